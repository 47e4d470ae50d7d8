// Debounce and throttle helpers for UI event handlers.
//
// debounce: run the function only after the events have stopped for `wait` milliseconds, e.g.
// search-as-you-type, where only the last keystroke matters.
// throttle: run the function at most once every `wait` milliseconds while events keep coming,
// e.g. scroll or resize handlers that should update the page regularly but not 120 times a second.

export function debounce(fn, wait = 250, { leading = false } = {}) {
  let timer = null;
  function debounced(...args) {
    const callNow = leading && timer === null;
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      if (!leading) fn.apply(this, args);
    }, wait);
    if (callNow) fn.apply(this, args);
  }
  // Allow callers to drop a pending call, for example when a component unmounts.
  debounced.cancel = () => {
    clearTimeout(timer);
    timer = null;
  };
  return debounced;
}

export function throttle(fn, wait = 100) {
  let last = 0;
  let trailing = null;
  return function throttled(...args) {
    const now = Date.now();
    const remaining = wait - (now - last);
    if (remaining <= 0) {
      last = now;
      fn.apply(this, args);
    } else {
      // Keep the latest arguments so the final event is never lost.
      clearTimeout(trailing);
      trailing = setTimeout(() => {
        last = Date.now();
        fn.apply(this, args);
      }, remaining);
    }
  };
}
