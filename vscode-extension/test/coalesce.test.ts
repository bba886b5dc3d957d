import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Coalescer } from "../src/lib/coalesce";

test("saves in quick succession run once, with the last value", async () => {
  const runs: Array<[string, number]> = [];
  const c = new Coalescer<number>(30, async (key, value) => void runs.push([key, value]));
  c.push("a", 1);
  await sleep(10);
  c.push("a", 2);
  c.push("b", 10);
  await sleep(10);
  c.push("a", 3);
  await c.idle();
  assert.deepEqual(runs.sort(), [["a", 3], ["b", 10]]);
});

test("a key never runs twice at once; a value arriving meanwhile runs afterwards", async () => {
  const events: string[] = [];
  let active = 0;
  const c = new Coalescer<number>(5, async (_key, value) => {
    active++;
    assert.equal(active, 1);
    events.push(`start ${value}`);
    await sleep(40);
    events.push(`end ${value}`);
    active--;
  });
  c.push("a", 1);
  await sleep(15);
  c.push("a", 2);
  c.push("a", 3);
  await c.idle();
  assert.deepEqual(events, ["start 1", "end 1", "start 3", "end 3"]);
});

test("without a delay a value runs at once; values arriving meanwhile run once afterwards, the last one", async () => {
  const events: string[] = [];
  const c = new Coalescer<number>(0, async (key, value) => {
    events.push(`start ${key}${value}`);
    await sleep(40);
    events.push(`end ${key}${value}`);
  });
  c.push("a", 1);
  assert.deepEqual(events, ["start a1"], "the first save runs before push() returns, with no timer");
  c.push("a", 2);
  c.push("b", 1); // another file ("Save All") does not wait for a's deploy
  assert.deepEqual(events, ["start a1", "start b1"]);
  await sleep(10);
  c.push("a", 3);
  assert.equal(c.pending, 2);
  await c.idle();
  assert.deepEqual(events, ["start a1", "start b1", "end a1", "start a3", "end b1", "end a3"]);
  c.push("a", 4);
  assert.deepEqual(events.at(-1), "start a4", "once idle, a save runs at once again");
  await c.idle();
});

test("a failing run does not stop later ones", async () => {
  const seen: number[] = [];
  const c = new Coalescer<number>(1, async (_k, v) => {
    seen.push(v);
    if (v === 1) throw new Error("boom");
  });
  c.push("a", 1);
  await c.idle();
  c.push("a", 2);
  await c.idle();
  assert.deepEqual(seen, [1, 2]);
});

test("idle resolves at once when nothing waits; dispose drops what waits", async () => {
  const c = new Coalescer<number>(1000, async () => assert.fail("must not run"));
  await c.idle();
  c.push("a", 1);
  assert.equal(c.pending, 1);
  c.dispose();
  await c.idle();
});
