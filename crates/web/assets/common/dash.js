// Small helpers shared by the dashboards' pages: JSON requests, server-sent events, a DOM
// builder, field errors, exact amounts, uPlot charts, tables, a task's live progress, and
// the page itself (header, hash router, live stream). No framework; data only ever
// reaches the page as text (textContent, attributes), never as HTML.

/**
 * Fetches a same-origin path. A plain object or array `body` is sent as JSON; anything
 * else (a string, Blob, File) is sent as is, so a caller that needs an exact
 * Content-Type wraps it in a typed Blob. Answers the parsed JSON, or the Response when
 * `json` is false. A non-2xx answer throws an Error with the server's
 * `{error, detail, field}` as `.error`, `.detail`, `.field` (and `.status`).
 */
export async function api(path, { method = 'GET', body, json = true } = {}) {
  const init = { method, headers: { Accept: 'application/json' } };
  if (isPlain(body)) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  } else if (body !== undefined) {
    init.body = body;
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    const answer = await response.json().catch(() => ({}));
    const error = new Error(answer.detail || answer.error || `${response.status} ${response.statusText}`);
    error.error = answer.error ?? 'http';
    error.detail = error.message;
    error.field = answer.field ?? null;
    error.status = response.status;
    throw error;
  }
  return json ? response.json() : response;
}

function isPlain(value) {
  return Array.isArray(value) || (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype);
}

/**
 * Opens an EventSource on `path` and calls `handlers[name](data, event)` for each named
 * event, with its data parsed as JSON. Answers the EventSource: the caller closes it.
 */
export function stream(path, handlers) {
  const source = new EventSource(path);
  for (const [name, handle] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => handle(JSON.parse(event.data), event));
  }
  return source;
}

/**
 * Builds an element. `attrs`: `class`, any attribute (true: present, false/null/undefined:
 * absent), and `onNAME` functions, added as listeners (the CSP forbids inline handlers).
 * Children: nodes, strings and numbers (as text), arrays of them; null and false are skipped.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (typeof value === 'function' && key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, '');
    else if (value !== false && value != null) node.setAttribute(key, String(value));
  }
  // append() turns strings and numbers into text nodes.
  node.append(...children.flat(Infinity).filter((child) => child != null && child !== false));
  return node;
}

/**
 * Shows `errors` ([{field, detail}]) as `<p class="field-error" data-field=FIELD>` right
 * after the control in `container` whose `data-field` is FIELD, or at the top of
 * `container` when none matches. Clears the errors shown before.
 */
export function showFieldErrors(container, errors) {
  container.querySelectorAll('.field-error').forEach((old) => old.remove());
  container.querySelectorAll('[aria-invalid]').forEach((control) => control.removeAttribute('aria-invalid'));
  const last = new Map(); // where each anchor's previous error went, to keep their order
  for (const { field, detail } of errors) {
    const control = field ? container.querySelector(`[data-field="${CSS.escape(field)}"]:not(.field-error)`) : null;
    const message = el('p', { class: 'field-error', 'data-field': field }, detail);
    const anchor = control ?? container;
    if (last.has(anchor)) last.get(anchor).after(message);
    else if (control) control.after(message);
    else container.prepend(message);
    last.set(anchor, message);
    control?.setAttribute('aria-invalid', 'true');
  }
}

/** A long hex id or address shortened for display: `0x1234ab…cdef`. */
export function shortId(hex) {
  return hex.length > 14 ? `${hex.slice(0, 8)}…${hex.slice(-4)}` : hex;
}

/**
 * An amount's decimal string ("999.9649") as a BigInt of base units (18 decimals), so
 * amounts compare exactly. Throws on anything else.
 */
export function toUnits(amount) {
  const match = /^(\d+)(?:\.(\d{1,18}))?$/.exec(String(amount).trim());
  if (!match) throw new Error(`not an amount: ${amount}`);
  return BigInt(match[1] + (match[2] ?? '').padEnd(18, '0'));
}

/**
 * A uPlot chart filling `div`'s width, resized with the window. `series`:
 * [{name, label, stroke, scale, range, stepped}] plotted against x (a step, or with `time`
 * a time in seconds); series sharing a `scale` share an axis (the first on the left,
 * others on the right), `range` fixes a scale, such as [0, 1], and `stepped` draws a value
 * that holds until the next point (a running total). Answers:
 * - `push(x, valuesByName)`: appends a point (a missing value leaves a gap); redraws at
 *   most once per animation frame, however fast points arrive;
 * - `clear()`: drops every point;
 * - `destroy()`: removes the chart and its resize listener.
 */
export function chart(div, series, { time = false, height = 240 } = {}) {
  const scales = { x: { time } };
  const axes = [{}];
  for (const { scale = 'y', range } of series) {
    if (scale in scales) continue;
    scales[scale] = range ? { range } : {};
    const first = axes.length === 1;
    axes.push({ scale, side: first ? 3 : 1, grid: { show: first } });
  }
  const data = [[], ...series.map(() => [])];
  const width = () => Math.max(div.clientWidth, 200);
  const plot = new globalThis.uPlot({
    width: width(),
    height,
    scales,
    axes,
    series: [
      { label: time ? 'time' : 'step' },
      ...series.map(({ name, label, stroke, scale = 'y', stepped }) => ({
        label: label ?? name, stroke, scale, width: 2, spanGaps: true,
        ...(stepped && { paths: globalThis.uPlot.paths.stepped({ align: 1 }) }),
      })),
    ],
  }, data.map((column) => column.slice()), div);

  let frame = 0;
  const draw = () => {
    frame ||= requestAnimationFrame(() => {
      frame = 0;
      // Copies: uPlot keeps the arrays it is given, and push() grows these between frames.
      plot.setData(data.map((column) => column.slice()));
    });
  };
  const resize = () => plot.setSize({ width: width(), height });
  window.addEventListener('resize', resize);

  return {
    push(x, values) {
      data[0].push(x);
      series.forEach(({ name }, i) => data[i + 1].push(typeof values[name] === 'number' ? values[name] : null));
      draw();
    },
    clear() {
      data.forEach((column) => { column.length = 0; });
      draw();
    },
    destroy() {
      cancelAnimationFrame(frame);
      window.removeEventListener('resize', resize);
      plot.destroy();
    },
  };
}

/**
 * Runs `load` one at a time: a call while it runs schedules one more run after it, so
 * answers are shown in order and the last one is never older than the last event.
 */
export function coalesce(load) {
  let busy = false;
  let again = false;
  return async function run() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    await load();
    busy = false;
    if (again) {
      again = false;
      run();
    }
  };
}

/** A hidden `.error` paragraph, for report(). */
export const errorLine = () => el('p', { class: 'error', role: 'alert', hidden: true });

/** Shows `error`'s message in `line`, or hides the line when `error` is null. */
export function report(line, error) {
  line.textContent = error ? error.message : '';
  line.hidden = !error;
}

/** A long id or address, shortened, in monospace, in full in its title. */
export const mono = (hex) => el('span', { class: 'mono', title: hex }, shortId(hex));

/** A table inside a horizontally scrolling wrapper, so wide tables never widen the page. */
export function table(id, columns, body) {
  return el('div', { class: 'table-wrap' },
    el('table', { id },
      el('thead', {}, el('tr', {}, columns.map((name) => el('th', { scope: 'col' }, name)))),
      body));
}

/** [[name, value]] as the <dt> and <dd> children of a `<dl class="facts">`. */
export const facts = (pairs) => pairs.flatMap(([name, value]) => [el('dt', {}, name), el('dd', {}, value)]);

/** A row of one cell across `columns` columns, saying the table is empty. */
export const emptyRow = (columns, text) => el('tr', {}, el('td', { colspan: columns, class: 'muted' }, text));

const LOG_LINES = 200;

/**
 * Follows a task's training steps and log (the SSE of /api/tasks/ID/steps) until `end`.
 * `div` gets a chart of loss, eval loss and accuracy against the step, and in `data-points`
 * the number of steps received so far; `log` (a <pre>) the last 200 lines, following the
 * tail unless the reader scrolled up; `note` the latest "Step N of M". Call it once `div`
 * is in the page (the chart takes its width). Answers a function that stops it all.
 */
export function progress(div, log, taskId, note) {
  div.setAttribute('data-points', 0);
  log.tabIndex = 0; // scrollable from the keyboard
  log.setAttribute('aria-label', `Log, last ${LOG_LINES} lines`);
  note.textContent = 'Waiting for steps…';
  const plot = chart(div, [
    { name: 'loss', stroke: '#2563eb' },
    { name: 'eval_loss', label: 'eval loss', stroke: '#d97706' },
    { name: 'accuracy', stroke: '#059669', scale: 'accuracy', range: [0, 1] },
  ]);

  let points = 0;
  const lines = [];
  const steps = stream(`/api/tasks/${encodeURIComponent(taskId)}/steps`, {
    step: ({ step, total, metrics }) => {
      plot.push(step, metrics);
      div.setAttribute('data-points', ++points);
      note.textContent = `Step ${step} of ${total}`;
    },
    log: ({ text }) => {
      const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      lines.push(text);
      if (lines.length > LOG_LINES) lines.splice(0, lines.length - LOG_LINES);
      log.textContent = lines.join('\n');
      if (atEnd) log.scrollTop = log.scrollHeight;
    },
    end: () => {
      steps.close();
      if (!points) note.textContent = 'This task reported no training steps.';
    },
  });
  return () => {
    steps.close();
    plot.destroy();
  };
}

/**
 * Runs a dashboard page: the header's account line, a hash router rendering views into
 * `view`, and the live /api/stream. The page never polls: views re-fetch on its events.
 * - `account()` fetches what the header shows, an object with `address`,
 *   `balance.available` and `height` (into #me-address, #me-balance, #me-height); it is
 *   fetched at the start and again on every `changed` event.
 * - `routes`: [[RegExp, render]]; the first pattern matching location.hash renders with
 *   render(ctx, ...its groups). A render may set `ctx.refresh()` (re-fetch what it shows:
 *   called on every `changed` event, after the account), `ctx.onBlock(height)` (called on
 *   every block), and push to `ctx.cleanups` what to stop when the view is left. It reads
 *   `ctx.account()`, the latest account fetch (a promise), and calls `ctx.changed()` after
 *   a change of its own, to re-fetch as after a `changed` event.
 * - `sections`: the nav link a view belongs to, when it is not the hash's first segment,
 *   such as `{ task: 'tasks' }` for #/task/ID.
 */
export function dashboard(view, { account, routes, sections = {} }) {
  let latest = null; // the latest account fetch
  let current = null; // the ctx of the view on screen

  function loadAccount() {
    latest = account();
    const balance = document.getElementById('me-balance');
    latest.then((answer) => {
      const address = document.getElementById('me-address');
      address.textContent = shortId(answer.address);
      address.title = answer.address;
      balance.textContent = answer.balance.available;
      balance.removeAttribute('title');
      document.getElementById('me-height').textContent = answer.height;
    }, (error) => {
      balance.textContent = '?';
      balance.title = error.message;
    });
  }

  function changed() {
    loadAccount();
    current.refresh?.();
  }

  function route() {
    for (const cleanup of current?.cleanups ?? []) cleanup();
    current = { refresh: null, onBlock: null, cleanups: [], account: () => latest, changed };
    view.replaceChildren();

    const hash = location.hash;
    const segment = hash.split('/')[1] ?? '';
    const section = `#/${Object.hasOwn(sections, segment) ? sections[segment] : segment}`;
    for (const link of document.querySelectorAll('header nav a')) {
      if (link.getAttribute('href') === section) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }

    for (const [pattern, render] of routes) {
      const match = pattern.exec(hash);
      if (match) return render(current, ...match.slice(1));
    }
    view.append(el('h1', {}, 'Not found'), el('p', {}, `Nothing at ${hash}. `, el('a', { href: '#/' }, 'Go to the overview.')));
  }

  window.addEventListener('hashchange', () => {
    route();
    view.focus(); // so keyboard and screen reader users start at the new view
  });
  loadAccount();
  route();

  const live = stream('/api/stream', {
    block: ({ height }) => {
      document.getElementById('me-height').textContent = height;
      current.onBlock?.(height);
    },
    changed,
  });
  // After a reconnection, events may have been missed: re-fetch as after `changed`.
  let connected = false;
  live.addEventListener('open', () => {
    if (connected) changed();
    connected = true;
  });
}

/**
 * Draws a running total (`points`: [{time_ms, total}] after each block where it changed)
 * on a time chart, from zero a minute before the first change: a total starts at nothing,
 * and a single point alone would leave the time axis without a span.
 */
export function plotTotals(plot, points) {
  plot.clear();
  if (!points.length) return;
  plot.push(points[0].time_ms / 1000 - 60, { total: 0 });
  // The chart needs numbers; the exact strings are shown beside it.
  for (const point of points) plot.push(point.time_ms / 1000, { total: Number(point.total) });
}

/** A size in bytes for people: B, KiB, MiB or GiB, one decimal past bytes. */
export function size(bytes) {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit ? `${value.toFixed(1)} ${units[unit]}` : `${value} B`;
}

/** A size given in MiB (device memory, VRAM), for people. */
export const sizeOfMiB = (mib) => size(mib * 1024 * 1024);
