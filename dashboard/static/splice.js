// Splice dashboard: the few behaviours htmx does not give by itself.
// An answer of 4xx/5xx from an action still shows (the admin API's refusal, in the element the request targets).
document.addEventListener("htmx:beforeSwap", function (event) {
  var status = event.detail.xhr.status;
  if (status >= 400 && status < 600 && status !== 401) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});
