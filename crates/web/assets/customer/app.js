// The customer dashboard: five views (overview, tasks, one task, submit, market) under the
// shared page runner of dash.js. The JSON and SSE routes it reads are described in the
// dashboard contract; amounts are exact decimal strings and are shown as given. Buttons
// carry an aria-label equal to their text, so every control has a label by any check.
import {
  api, chart, coalesce, dashboard, el, emptyRow, errorLine, facts, mono, plotTotals, progress, report, shortId, showFieldErrors, size,
  table, toUnits,
} from '../common/dash.js';

const view = document.getElementById('view');

// --- Helpers -------------------------------------------------------------------------

// A task's status: its outcome once it has one ("completed"), else its phase.
const statusOf = (task) => task.outcome ?? task.phase;

const dash = (value) => value ?? '—';

// --- Overview --------------------------------------------------------------------------

const BALANCES = [
  ['available', 'Available'],
  ['escrow', 'In escrow'],
  ['trust_lock', 'Trust lock'],
  ['staked', 'Staked'],
  ['unbonding', 'Unbonding'],
];

function overview(ctx) {
  const problem = errorLine();
  const address = el('dd', { id: 'address', class: 'mono' }, '…');
  const balances = Object.fromEntries(BALANCES.map(([key]) =>
    [key, el('dd', { id: `balance-${key.replace('_', '-')}`, class: 'amount' }, '…')]));
  const spent = el('dd', { id: 'spent', class: 'amount' }, '…');
  const budgetShown = el('dd', { class: 'amount' }, '…');
  const warning = el('p', { id: 'budget-warning', role: 'status', hidden: true });
  const budget = el('input', {
    id: 'budget', type: 'text', inputmode: 'decimal', autocomplete: 'off', placeholder: 'no budget',
    'data-field': 'budget', 'aria-describedby': 'budget-help',
  });
  const save = el('button', { id: 'budget-save', type: 'submit', 'aria-label': 'Save budget' }, 'Save');
  const form = el('form', { class: 'stack', novalidate: true },
    el('label', { for: 'budget' }, 'Budget (oGPU)'),
    el('div', { class: 'row' }, budget, save),
    el('p', { id: 'budget-help', class: 'muted' }, 'Leave empty for no budget. You are warned at 80% and at 100%.'));
  const spendDiv = el('div', { id: 'spend-chart', class: 'chart' });

  view.append(
    el('h1', {}, 'Overview'),
    problem,
    el('section', { class: 'card' },
      el('h2', {}, 'Account'),
      el('dl', { class: 'facts' }, el('dt', {}, 'Address'), address,
        BALANCES.map(([key, label]) => [el('dt', {}, label), balances[key]])),
      el('p', { class: 'muted' }, 'Amounts in oGPU.')),
    el('section', { class: 'card' },
      el('h2', {}, 'Spending'),
      warning,
      el('dl', { class: 'facts' }, el('dt', {}, 'Spent on tasks'), spent, el('dt', {}, 'Budget'), budgetShown),
      form),
    el('section', { class: 'card' },
      el('h2', {}, 'Spend over time'),
      spendDiv,
      el('p', { class: 'muted' }, 'Total spent on tasks (oGPU) after each block where it changed.')));

  const spendChart = chart(spendDiv, [{ name: 'total', label: 'spent (oGPU)', stroke: '#2563eb', stepped: true }], { time: true });
  ctx.cleanups.push(spendChart.destroy);

  let budgetFilled = false; // fill the input once: later refreshes must not undo typing
  ctx.refresh = coalesce(async () => {
    try {
      const [account, spend] = await Promise.all([ctx.account(), api('/api/spend')]);
      address.textContent = account.address;
      for (const [key] of BALANCES) balances[key].textContent = account.balance[key];
      spent.textContent = account.spent;
      budgetShown.textContent = account.budget ?? 'none';
      showWarning(warning, account.spent, account.budget);
      if (!budgetFilled) budget.value = account.budget ?? '';
      budgetFilled = true;
      plotTotals(spendChart, spend.points);
      report(problem, null);
    } catch (error) {
      report(problem, error);
    }
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    save.disabled = true;
    try {
      const answer = await api('/api/budget', { method: 'PUT', body: { budget: budget.value.trim() || null } });
      budget.value = answer.budget ?? '';
      showFieldErrors(form, []);
      ctx.changed();
    } catch (error) {
      showFieldErrors(form, [{ field: error.field, detail: error.message }]);
    } finally {
      save.disabled = false;
    }
  });

  ctx.refresh();
}

// Shown from 80% of the budget, stronger from 100%; compared in exact base units.
function showWarning(warning, spent, budget) {
  const over80 = budget !== null && toUnits(spent) * 10n >= toUnits(budget) * 8n;
  const over100 = budget !== null && toUnits(spent) >= toUnits(budget);
  warning.hidden = !over80;
  warning.classList.toggle('over', over100);
  if (over100) {
    warning.textContent = `Budget reached: you have spent ${spent} oGPU of your ${budget} oGPU budget.`;
  } else if (over80) {
    const percent = (toUnits(spent) * 100n) / toUnits(budget);
    warning.textContent = `You have spent ${percent}% of your ${budget} oGPU budget (${spent} oGPU).`;
  }
}

// --- Tasks -----------------------------------------------------------------------------

// The chain's phases; a phase the server reports that is not here is added when seen.
const PHASES = ['bidding', 'executing', 'revealing', 'racing', 'verifying', 'challengeable', 'done'];
const TASK_COLUMNS = ['Task', 'Status', 'Market', 'Provider', 'Price', 'Run blocks', 'Cost', 'Verification', 'Verdict'];

function tasks(ctx) {
  const problem = errorLine();
  const filter = el('input', { id: 'task-filter', type: 'search', autocomplete: 'off', placeholder: 'name, id, provider…' });
  const phase = el('select', { id: 'task-phase' },
    el('option', { value: 'all' }, 'all'),
    PHASES.map((name) => el('option', { value: name }, name)));
  const body = el('tbody');
  const haystacks = new WeakMap(); // row -> the lower-case text the filter matches

  view.append(
    el('h1', {}, 'Tasks'),
    problem,
    el('div', { class: 'row filters' },
      el('div', { class: 'stack' }, el('label', { for: 'task-filter' }, 'Filter'), filter),
      el('div', { class: 'stack' }, el('label', { for: 'task-phase' }, 'Phase'), phase)),
    table('tasks', TASK_COLUMNS, body));

  const apply = () => {
    const words = filter.value.trim().toLowerCase();
    for (const row of body.rows) {
      if (!haystacks.has(row)) continue;
      row.hidden = !((phase.value === 'all' || row.dataset.phase === phase.value) && haystacks.get(row).includes(words));
    }
  };
  filter.addEventListener('input', apply);
  phase.addEventListener('change', apply);

  ctx.refresh = coalesce(async () => {
    try {
      const { tasks: list } = await api('/api/tasks');
      const known = new Set([...phase.options].map((option) => option.value));
      for (const { phase: name } of list) {
        if (!known.has(name)) phase.append(el('option', { value: name }, name));
        known.add(name);
      }
      body.replaceChildren(...list.map((task) => {
        const row = taskRow(task);
        haystacks.set(row, [task.id, task.name, task.kind, task.phase, task.outcome, task.market, task.provider,
          task.verification, task.verdict].filter(Boolean).join(' ').toLowerCase());
        return row;
      }));
      if (!list.length) body.append(emptyRow(TASK_COLUMNS.length, 'No tasks yet.'));
      apply();
      report(problem, null);
    } catch (error) {
      report(problem, error);
    }
  });
  ctx.refresh();
}

function taskRow(task) {
  return el('tr', { 'data-task': task.id, 'data-phase': task.phase },
    el('td', {},
      el('a', { href: `#/task/${task.id}`, title: task.id }, task.name ?? shortId(task.id)),
      el('span', { class: 'muted' }, ` ${task.kind}`)),
    el('td', {}, el('span', { class: 'badge', 'data-status': statusOf(task) }, statusOf(task))),
    el('td', {}, task.market),
    el('td', {}, task.provider ? mono(task.provider) : '—'),
    el('td', { class: 'amount' }, task.price ?? el('span', { class: 'muted', title: 'no price yet: the most it may cost' }, `max ${task.max_price}`)),
    el('td', { class: 'num' }, dash(task.run_blocks)),
    el('td', { class: 'amount' }, task.cost),
    el('td', { class: 'wrap' }, task.verification),
    el('td', {}, dash(task.verdict)));
}

// --- One task --------------------------------------------------------------------------

function task(ctx, id) {
  const path = `/api/tasks/${encodeURIComponent(id)}`;
  const problem = errorLine();
  const title = el('h1', {}, 'Task ', mono(id));
  const status = el('span', { id: 'task-status', class: 'badge' }, '…');
  const details = el('dl', { class: 'facts' });
  const note = el('p', { class: 'muted' });
  const chartDiv = el('div', { id: 'chart', class: 'chart' });
  const log = el('pre', { id: 'log' });
  const timeline = el('ol', { id: 'timeline' });
  const files = el('ul', { id: 'files' });
  const filesNote = el('p', { class: 'muted' }, 'The result files can be downloaded once the task has a result.');

  const cancel = el('button', { id: 'cancel', type: 'button', 'aria-label': 'Cancel task' }, 'Cancel task');
  const cancelError = errorLine();
  const topUpPrice = el('input', { id: 'top-up-price', type: 'text', inputmode: 'decimal', autocomplete: 'off', placeholder: 'e.g. 0.08' });
  const topUp = el('button', { id: 'top-up', type: 'submit', 'aria-label': 'Raise max price' }, 'Raise max price');
  const topUpError = errorLine();
  const topUpForm = el('form', { class: 'stack', novalidate: true },
    el('label', { for: 'top-up-price' }, 'New max price (oGPU)'),
    el('div', { class: 'row' }, topUpPrice, topUp),
    topUpError);

  view.append(
    el('div', { class: 'title-row' }, title, status),
    problem,
    el('div', { class: 'columns' },
      el('section', { class: 'card' }, el('h2', {}, 'Details'), details),
      el('section', { class: 'card' },
        el('h2', {}, 'Actions'),
        el('div', { class: 'stack' }, el('div', { class: 'row' }, cancel), cancelError),
        topUpForm)),
    el('section', { class: 'card' }, el('h2', {}, 'Training'), note, chartDiv),
    el('section', { class: 'card' }, el('h2', {}, 'Log'), log),
    el('div', { class: 'columns' },
      el('section', { class: 'card' }, el('h2', {}, 'Timeline'), timeline),
      el('section', { class: 'card' }, el('h2', {}, 'Result files'), filesNote, files)));

  let finished = false; // done: nothing left to cancel or top up
  let filesShown = false;
  ctx.refresh = coalesce(async () => {
    try {
      const detail = await api(path);
      showTask(detail.task);
      timeline.replaceChildren(...detail.timeline.map((entry) => el('li', {},
        el('span', { class: 'muted' }, `block ${entry.height}`, entry.time_ms ? ` · ${new Date(entry.time_ms).toLocaleString()}` : ''),
        ' ', el('strong', {}, entry.event), ' ', entry.text)));
      if (detail.has_result && !filesShown) {
        const { files: list } = await api(`${path}/files`);
        files.replaceChildren(...list.map((file) => el('li', {},
          el('a', { href: `${path}/files/${file.path.split('/').map(encodeURIComponent).join('/')}`, download: '' }, file.path),
          el('span', { class: 'muted' }, ` ${size(file.size)}`))));
        filesNote.hidden = true;
        filesShown = true;
      }
      report(problem, null);
    } catch (error) {
      report(problem, error);
    }
  });

  function showTask(row) {
    title.replaceChildren(row.name ?? 'Task', ' ', mono(row.id));
    status.textContent = statusOf(row);
    status.dataset.status = statusOf(row);
    details.replaceChildren(...facts([
      ['Kind', row.kind],
      ['Phase', row.phase],
      ['Outcome', dash(row.outcome)],
      ['Market', row.market],
      ['Provider', row.provider ? mono(row.provider) : '—'],
      ['Price', dash(row.price)],
      ['Max price', row.max_price],
      ['Cost', row.cost],
      ['Run blocks', dash(row.run_blocks)],
      ['Verification', row.verification],
      ['Verdict', dash(row.verdict)],
      ['Submitted at block', row.submitted_height],
    ]));
    finished = row.phase === 'done';
    cancel.disabled = finished;
    topUp.disabled = finished;
  }

  cancel.addEventListener('click', async () => {
    cancel.disabled = true;
    try {
      await api(`${path}/cancel`, { method: 'POST' });
      report(cancelError, null);
      ctx.refresh();
    } catch (error) {
      report(cancelError, error);
    } finally {
      cancel.disabled = finished;
    }
  });

  topUpForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    topUp.disabled = true;
    try {
      await api(`${path}/top-up`, { method: 'POST', body: { max_price: topUpPrice.value.trim() } });
      topUpPrice.value = '';
      report(topUpError, null);
      ctx.refresh();
    } catch (error) {
      report(topUpError, error);
    } finally {
      topUp.disabled = finished;
    }
  });

  ctx.cleanups.push(progress(chartDiv, log, id, note)); // now that the chart's div is in the page

  ctx.refresh();
}

// --- Submit ----------------------------------------------------------------------------

// A spec has a [workload] table; other .toml files (a training config) are data files.
const SPEC = /^\s*(\[\s*workload\s*[\].]|workload\s*=)/m;

function submit() {
  const specInput = el('input', { id: 'spec-file', type: 'file', accept: '.toml', 'data-field': 'spec' });
  const filesInput = el('input', { id: 'data-files', type: 'file', multiple: true, 'data-field': 'files' });
  const drop = el('div', { class: 'drop-zone' }, 'Or drop the spec and its files here.');
  const needs = el('ul', { id: 'draft-needs', class: 'needs' });
  const needsNote = el('p', { class: 'muted' }, 'Upload a spec to see the files it names.');
  const quote = el('p', { id: 'quote' });
  const uploading = el('p', { class: 'muted', 'aria-live': 'polite' });
  const send = el('button', { id: 'submit', type: 'submit', disabled: true, 'aria-label': 'Submit task' }, 'Submit task');
  const form = el('form', { class: 'stack', novalidate: true },
    el('div', { class: 'stack' }, el('label', { for: 'spec-file' }, 'Task spec (.toml)'), specInput),
    el('div', { class: 'stack' }, el('label', { for: 'data-files' }, 'Files the spec names'), filesInput),
    drop,
    el('h2', {}, 'Needed files'), needsNote, needs,
    el('h2', {}, 'Cost'), quote,
    uploading,
    el('div', { class: 'row' }, send));

  view.append(
    el('h1', {}, 'Submit a task'),
    el('p', { class: 'muted' }, 'Upload a task spec and the files it names. Nothing is paid until you submit.'),
    el('section', { class: 'card' }, form));

  // Uploads run one after another, in the order chosen, so each answer is the latest draft.
  const draft = api('/api/drafts', { method: 'POST' });
  let queue = Promise.resolve();
  let pending = 0;
  let last = { needs: [], missing: [], extra: [], quote: null, errors: [] };
  const failures = new Map(); // file name -> its upload error, until it uploads fine
  let submitError = null;

  draft.catch((error) => {
    submitError = { field: null, detail: `Could not start a draft: ${error.message}` };
    render();
  });

  function upload(file, field, put) {
    pending += 1;
    render();
    queue = queue.then(async () => {
      uploading.textContent = `Uploading ${file.name}…`;
      try {
        last = await put((await draft).id);
        failures.delete(file.name);
        submitError = null;
      } catch (error) {
        failures.set(file.name, { field, detail: `${file.name}: ${error.message}` });
      }
      pending -= 1;
      uploading.textContent = '';
      render();
    });
  }

  const putSpec = (file) => upload(file, 'spec', async (id) => api(`/api/drafts/${id}/spec`,
    { method: 'PUT', body: new Blob([await file.text()], { type: 'text/plain' }) }));
  const putFile = (file) => upload(file, 'files', (id) => api(`/api/drafts/${id}/files/${encodeURIComponent(file.name)}`,
    { method: 'PUT', body: new Blob([file], { type: 'application/octet-stream' }) }));

  // Files from the multi-file input or a drop: specs first, so the files land where they name.
  async function take(fileList) {
    const chosen = [...fileList];
    const isSpec = await Promise.all(chosen.map(async (file) => file.name.endsWith('.toml') && SPEC.test(await file.text())));
    chosen.filter((_, i) => isSpec[i]).forEach(putSpec);
    chosen.filter((_, i) => !isSpec[i]).forEach(putFile);
  }

  specInput.addEventListener('change', () => [...specInput.files].forEach(putSpec));
  filesInput.addEventListener('change', () => take(filesInput.files));
  drop.addEventListener('dragover', (event) => {
    event.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    take(event.dataTransfer.files);
  });

  function render() {
    // `missing` may name a needed file by its path or by its basename.
    const missing = (path) => last.missing.includes(path) || last.missing.includes(path.split('/').pop());
    needs.replaceChildren(...last.needs.map((path) => {
      const have = !missing(path);
      return el('li', { class: have ? 'have' : 'missing' },
        el('span', { class: 'tick', 'aria-hidden': 'true' }, have ? '✓' : '○'), ' ', path,
        el('span', { class: 'muted' }, have ? ' uploaded' : ' missing'));
    }));
    needsNote.hidden = last.needs.length > 0;

    if (last.quote) {
      quote.textContent = `Reserves ${last.quote.reserved} oGPU of your ${last.quote.balance} oGPU available`;
      quote.dataset.reserved = last.quote.reserved;
    } else {
      quote.textContent = 'No quote yet: upload the spec and every file it names.';
      delete quote.dataset.reserved;
    }

    const shown = [...last.errors, ...failures.values()];
    // Files the spec does not name, unless the server already lists them under `files`.
    if (last.extra.length && !last.errors.some((e) => e.field === 'files' && last.extra.every((name) => e.detail.includes(name)))) {
      shown.push({ field: 'files', detail: `Not named by the spec: ${last.extra.join(', ')}` });
    }
    if (submitError) shown.push(submitError);
    showFieldErrors(form, shown);
    send.disabled = pending > 0 || !last.quote || last.errors.length > 0 || failures.size > 0;
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    send.disabled = true;
    try {
      const { task: id } = await api(`/api/drafts/${(await draft).id}/submit`, { method: 'POST' });
      location.hash = `#/task/${id}`;
    } catch (error) {
      submitError = { field: error.field, detail: error.message };
      render();
    }
  });

  render();
}

// --- Market ----------------------------------------------------------------------------

const AUCTION_COLUMNS = ['Task', 'Kind', 'Max price', 'Phase', 'Submitted at block', 'Verification'];
const POOL_COLUMNS = ['Pool', 'Kind', 'Price', 'Subscribers'];

function market(ctx) {
  const problem = errorLine();
  const auctions = el('tbody');
  const pools = el('tbody');
  view.append(
    el('h1', {}, 'Market'),
    problem,
    el('section', { class: 'card' }, el('h2', {}, 'Open auctions'), table('auctions', AUCTION_COLUMNS, auctions)),
    el('section', { class: 'card' }, el('h2', {}, 'Pools'), table('pools', POOL_COLUMNS, pools)));

  // Any block may change the market, not only the blocks that touch this account.
  ctx.refresh = ctx.onBlock = coalesce(async () => {
    try {
      const answer = await api('/api/market');
      auctions.replaceChildren(...answer.auctions.map((task) => el('tr', { 'data-task': task.id },
        el('td', {}, task.name ? `${task.name} ` : '', mono(task.id)),
        el('td', {}, task.kind),
        el('td', { class: 'amount' }, task.max_price),
        el('td', {}, task.phase),
        el('td', { class: 'num' }, task.submitted_height),
        el('td', { class: 'wrap' }, task.verification))));
      if (!answer.auctions.length) auctions.append(emptyRow(AUCTION_COLUMNS.length, 'No open auctions.'));
      pools.replaceChildren(...answer.pools.map((pool) => el('tr', { 'data-pool': pool.id },
        el('td', {}, mono(pool.id)),
        el('td', {}, pool.kind),
        el('td', { class: 'amount' }, pool.price),
        el('td', { class: 'num' }, pool.subscribers))));
      if (!answer.pools.length) pools.append(emptyRow(POOL_COLUMNS.length, 'No pools.'));
      report(problem, null);
    } catch (error) {
      report(problem, error);
    }
  });
  ctx.refresh();
}

// --- The page ----------------------------------------------------------------------

dashboard(view, {
  account: () => api('/api/me'),
  routes: [
    [/^#?\/?$/, overview],
    [/^#\/tasks$/, tasks],
    [/^#\/task\/([^/]+)$/, task],
    [/^#\/submit$/, submit],
    [/^#\/market$/, market],
  ],
  sections: { task: 'tasks' },
});
