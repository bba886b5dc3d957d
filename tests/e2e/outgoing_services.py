"""Services that reach outgoing connections named in their payload, in both faces (def / async def).

Not imported by the tests: test_outgoing.py deploys this file's text to its cluster as ``shop/out.py``.
"""

from sqlalchemy import text

from splice.server import Service


class Get(Service):
    name = "out.get"

    def handle(self):
        p = self.request.payload
        answer = self.out.rest[p["connection"]].get(p["path"])
        self.response.payload = {"status": answer.status_code, "text": answer.text}


class AsyncGet(Service):
    name = "out.aget"

    async def handle(self):
        p = self.request.payload
        answer = await self.out.rest[p["connection"]].get(p["path"])
        self.response.payload = {"status": answer.status_code, "text": answer.text}


def _create(table):
    return text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, label VARCHAR(40))")


class Sql(Service):
    name = "out.sql"

    def handle(self):
        p = self.request.payload
        engine = self.out.sql[p["connection"]]
        with engine.begin() as conn:
            conn.execute(_create(p["table"]))
            conn.execute(text(f"INSERT INTO {p['table']} VALUES (1, :label)"), {"label": p["label"]})
        with engine.connect() as conn:
            self.response.payload = list(conn.execute(text(f"SELECT label FROM {p['table']}")).scalars())


class AsyncSql(Service):
    name = "out.asql"

    async def handle(self):
        p = self.request.payload
        engine = self.out.sql[p["connection"]]
        async with engine.begin() as conn:
            await conn.execute(_create(p["table"]))
            await conn.execute(text(f"INSERT INTO {p['table']} VALUES (1, :label)"), {"label": p["label"]})
        async with engine.connect() as conn:
            rows = await conn.execute(text(f"SELECT label FROM {p['table']}"))
            self.response.payload = list(rows.scalars())


class Cache(Service):
    name = "out.cache"

    def handle(self):
        p = self.request.payload
        cache = self.out.redis[p["connection"]]
        cache.set(p["key"], p["value"], ex=60)
        self.response.payload = cache.get(p["key"]).decode()


class AsyncCache(Service):
    name = "out.acache"

    async def handle(self):
        p = self.request.payload
        cache = self.out.redis[p["connection"]]
        await cache.set(p["key"], p["value"], ex=60)
        self.response.payload = (await cache.get(p["key"])).decode()


class Publish(Service):
    name = "out.publish"

    def handle(self):
        p = self.request.payload
        self.out.amqp[p["connection"]].publish(p["body"], routing_key=p["queue"])
        self.response.payload = "published"


class AsyncPublish(Service):
    name = "out.apublish"

    async def handle(self):
        p = self.request.payload
        await self.out.amqp[p["connection"]].publish(p["body"], routing_key=p["queue"])
        self.response.payload = "published"
