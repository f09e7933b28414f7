// The provider dashboard, served by the running provider agent: four views (overview, work,
// one task, earnings) under the shared page runner of dash.js. The JSON and SSE routes it
// reads are described in the provider contract; amounts are exact decimal strings and are
// shown as given. The page only reads: it has no controls.
import {
  api, chart, coalesce, dashboard, el, emptyRow, errorLine, facts, mono, plotTotals, progress, report, shortId, sizeOfMiB, table,
} from '../common/dash.js';

const view = document.getElementById('view');

// --- Helpers -------------------------------------------------------------------------

const badge = (status) => el('span', { class: 'badge', 'data-status': status }, status);

// A link to a task's page, named by its name when it has one.
const taskLink = (id, name) => el('a', { href: `#/task/${id}`, title: id }, name ?? shortId(id));

// A task by name and id, for tasks with no page here.
const taskName = (id, name) => [name ? `${name} ` : '', mono(id)];

const amountCell = (amount) => el('td', { class: 'amount' }, amount);

// Whole hours, minutes or seconds, as the agent's configuration usually gives them.
function duration(seconds) {
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

// --- Overview --------------------------------------------------------------------------

const BALANCES = [
  ['available', 'Available'],
  ['staked', 'Staked'],
  ['trust_lock', 'Trust lock'],
  ['unbonding', 'Unbonding'],
];
const DEVICE_COLUMNS = ['Kind', 'Model', 'Memory', 'Speed'];
const POOL_COLUMNS = ['Pool', 'Name', 'Kind', 'Price', 'Stake'];

function overview(ctx) {
  const problem = errorLine();
  const address = el('dd', { id: 'provider-address', class: 'mono' }, '…');
  const online = el('span', { id: 'online', class: 'badge' }, '…');
  const registered = el('dd', {}, '…');
  const region = el('dd', {}, '…');
  const node = el('dd', { class: 'mono' }, '…');
  const stake = el('span', { id: 'stake', class: 'amount' }, '…');
  const reputation = el('span', { id: 'reputation', class: 'num' }, '…');
  const jailed = el('p', { id: 'jailed', role: 'status', hidden: true });
  const balances = Object.fromEntries(BALANCES.map(([key]) =>
    [key, el('dd', { id: `balance-${key.replace('_', '-')}`, class: 'amount' }, '…')]));
  const devices = el('tbody');
  const pools = el('tbody');
  const pricing = el('dl', { id: 'pricing', class: 'facts' });

  view.append(
    el('h1', {}, 'Overview'),
    problem,
    el('div', { class: 'columns' },
      el('section', { class: 'card' },
        el('h2', {}, 'Provider'),
        el('dl', { class: 'facts' },
          el('dt', {}, 'Address'), address,
          el('dt', {}, 'Agent'), el('dd', {}, online),
          el('dt', {}, 'Registered'), registered,
          el('dt', {}, 'Region'), region,
          el('dt', {}, 'Node'), node)),
      el('section', { class: 'card' },
        el('h2', {}, 'Trust'),
        jailed,
        el('dl', { class: 'facts' },
          el('dt', {}, 'Stake (trust lock)'), el('dd', {}, stake, ' oGPU'),
          el('dt', {}, 'Reputation'), el('dd', {}, reputation, el('span', { class: 'muted' }, ' of 1000'))))),
    el('div', { class: 'columns' },
      el('section', { class: 'card' },
        el('h2', {}, 'Balance'),
        el('dl', { class: 'facts' }, BALANCES.map(([key, label]) => [el('dt', {}, label), balances[key]])),
        el('p', { class: 'muted' }, 'Amounts in oGPU.')),
      el('section', { class: 'card' }, el('h2', {}, 'Pricing'), pricing)),
    el('section', { class: 'card' }, el('h2', {}, 'Devices'), table('devices', DEVICE_COLUMNS, devices)),
    el('section', { class: 'card' }, el('h2', {}, 'Pools'), table('pools', POOL_COLUMNS, pools)));

  // Jailed while the chain's height is below jailed_until: checked again on every block.
  let jailedUntil = 0;
  const showJail = (height) => {
    jailed.hidden = !(jailedUntil > height);
    jailed.textContent = `Jailed until block ${jailedUntil}: no new bids or pool jobs until then.`;
  };
  ctx.onBlock = showJail;

  ctx.refresh = coalesce(async () => {
    try {
      const provider = await ctx.account();
      address.textContent = provider.address;
      online.textContent = provider.online ? 'online' : 'offline';
      online.dataset.status = online.textContent;
      registered.textContent = provider.registered ? 'yes' : 'no';
      region.textContent = provider.region;
      node.textContent = provider.api;
      stake.textContent = provider.stake;
      reputation.textContent = provider.reputation;
      jailedUntil = provider.jailed_until;
      showJail(provider.height);
      for (const [key] of BALANCES) balances[key].textContent = provider.balance[key];

      devices.replaceChildren(...provider.devices.map((device) => el('tr', {},
        el('td', {}, device.kind),
        el('td', { class: 'wrap' }, device.model),
        el('td', { class: 'num' }, sizeOfMiB(device.memory_mb)),
        el('td', { class: 'num' }, device.gflops ? `${device.gflops} GFLOPS` : 'not measured'))));
      if (!provider.devices.length) devices.append(emptyRow(DEVICE_COLUMNS.length, 'No devices detected.'));

      pools.replaceChildren(...provider.pools.map((pool) => el('tr', { 'data-pool': pool.id },
        el('td', {}, mono(pool.id)),
        el('td', {}, pool.name),
        el('td', {}, pool.kind),
        amountCell(pool.price),
        amountCell(pool.stake))));
      if (!provider.pools.length) pools.append(emptyRow(POOL_COLUMNS.length, 'Not in any pool.'));

      const price = provider.pricing;
      pricing.replaceChildren(...facts([
        ['Per device-second', `${price.per_device_second} oGPU`],
        ['Floor (the least it works for)', `${price.floor} oGPU`],
        ['Margin', `${price.margin_bps / 100}%`],
        ['Slots (tasks at once)', provider.slots],
        ['Longest task', duration(provider.max_task_s)],
      ]));
      report(problem, null);
    } catch (error) {
      report(problem, error);
    }
  });
  ctx.refresh();
}

// --- Work ------------------------------------------------------------------------------

const RUNNING_COLUMNS = ['Task', 'Kind', 'Phase', 'Price', 'Awarded at block'];
const BID_COLUMNS = ['Task', 'Max price', 'State'];
const AUCTION_COLUMNS = ['Task', 'Kind', 'Max price', 'Bids'];

function work(ctx) {
  const problem = errorLine();
  const running = el('tbody');
  const bids = el('tbody');
  const auctions = el('tbody');
  view.append(
    el('h1', {}, 'Work'),
    problem,
    el('section', { class: 'card' }, el('h2', {}, 'Running'), table('running', RUNNING_COLUMNS, running)),
    el('section', { class: 'card' }, el('h2', {}, 'Bids'), table('bids', BID_COLUMNS, bids)),
    el('section', { class: 'card' }, el('h2', {}, 'Open auctions'), table('auctions', AUCTION_COLUMNS, auctions)));

  // Any block may open or close an auction, not only the blocks that touch this provider.
  // The tables are rebuilt only when the answer changed, so a focused link keeps its focus.
  let shown = null;
  ctx.refresh = ctx.onBlock = coalesce(async () => {
    try {
      const answer = await api('/api/work');
      report(problem, null);
      const text = JSON.stringify(answer);
      if (text === shown) return;
      shown = text;
      running.replaceChildren(...answer.running.map((task) => el('tr', { 'data-task': task.task },
        el('td', {}, taskLink(task.task, task.name)),
        el('td', {}, task.kind),
        el('td', {}, badge(task.phase)),
        amountCell(task.price),
        el('td', { class: 'num' }, task.awarded_height))));
      if (!answer.running.length) running.append(emptyRow(RUNNING_COLUMNS.length, 'Nothing running.'));

      bids.replaceChildren(...answer.bids.map((bid) => el('tr', { 'data-task': bid.task },
        el('td', {}, taskName(bid.task, bid.name)),
        amountCell(bid.max_price),
        el('td', {}, badge(bid.state)))));
      if (!answer.bids.length) bids.append(emptyRow(BID_COLUMNS.length, 'No bids.'));

      auctions.replaceChildren(...answer.auctions.map((auction) => el('tr', { 'data-task': auction.task },
        el('td', {}, taskName(auction.task, auction.name)),
        el('td', {}, auction.kind),
        amountCell(auction.max_price),
        el('td', { class: 'num' }, auction.bids, auction.mine && [' ', el('span', { class: 'badge', 'data-status': 'mine' }, 'you bid')]))));
      if (!answer.auctions.length) auctions.append(emptyRow(AUCTION_COLUMNS.length, 'No open auctions.'));
    } catch (error) {
      report(problem, error);
    }
  });
  ctx.refresh();
}

// --- One task --------------------------------------------------------------------------

function task(ctx, id) {
  const problem = errorLine();
  const title = el('h1', {}, 'Task ', mono(id));
  const status = el('span', { id: 'task-status', class: 'badge' }, '…');
  const details = el('div');
  const note = el('p', { class: 'muted' });
  const chartDiv = el('div', { id: 'chart', class: 'chart' });
  const log = el('pre', { id: 'log' });
  view.append(
    el('div', { class: 'title-row' }, title, status),
    problem,
    el('section', { class: 'card' }, el('h2', {}, 'Details'), details),
    el('section', { class: 'card' }, el('h2', {}, 'Training'), note, chartDiv),
    el('section', { class: 'card' }, el('h2', {}, 'Log'), log));
  ctx.cleanups.push(progress(chartDiv, log, id, note)); // now that the chart's div is in the page

  // The phase comes from the running work: there is no per-task route on this page.
  ctx.refresh = coalesce(async () => {
    try {
      const row = (await api('/api/work')).running.find((running) => running.task === id);
      title.replaceChildren(row?.name ?? 'Task', ' ', mono(id));
      status.textContent = row ? row.phase : 'not running';
      status.dataset.status = status.textContent;
      details.replaceChildren(row
        ? el('dl', { class: 'facts' }, facts([
          ['Kind', row.kind],
          ['Phase', row.phase],
          ['Price', `${row.price} oGPU`],
          ['Awarded at block', row.awarded_height],
        ]))
        : el('p', { class: 'muted' }, 'This provider is not running this task: it has ended here, or was never awarded to it.'));
      report(problem, null);
    } catch (error) {
      report(problem, error);
    }
  });
  ctx.refresh();
}

// --- Earnings --------------------------------------------------------------------------

const BY_TASK_COLUMNS = ['Task', 'Amount', 'For'];
const BY_REASON_COLUMNS = ['For', 'Amount'];
const SLASH_COLUMNS = ['Block', 'Amount', 'Reason'];

function earnings(ctx) {
  const problem = errorLine();
  const total = el('span', { id: 'earnings-total', class: 'amount' }, '…');
  const chartDiv = el('div', { id: 'earnings-chart', class: 'chart' });
  const byTask = el('tbody');
  const byReason = el('tbody');
  const slashes = el('tbody');
  view.append(
    el('h1', {}, 'Earnings'),
    problem,
    el('section', { class: 'card' },
      el('h2', {}, 'Earned over time'),
      el('dl', { class: 'facts' }, el('dt', {}, 'Total earned'), el('dd', {}, total, ' oGPU')),
      chartDiv,
      el('p', { class: 'muted' }, 'Total earned (oGPU) after each block where it changed.')),
    el('div', { class: 'columns' },
      el('section', { class: 'card' }, el('h2', {}, 'By task'), table('earnings-by-task', BY_TASK_COLUMNS, byTask)),
      el('section', { class: 'card' }, el('h2', {}, 'By reason'), table('earnings-by-reason', BY_REASON_COLUMNS, byReason))),
    el('section', { class: 'card' }, el('h2', {}, 'Slashes'), table('slashes', SLASH_COLUMNS, slashes)));

  const plot = chart(chartDiv, [{ name: 'total', label: 'earned (oGPU)', stroke: '#059669', stepped: true }], { time: true });
  ctx.cleanups.push(plot.destroy);

  ctx.refresh = coalesce(async () => {
    try {
      const answer = await api('/api/earnings');
      total.textContent = answer.total;
      plotTotals(plot, answer.points);

      byTask.replaceChildren(...answer.by_task.map((row) => el('tr', { 'data-task': row.task },
        el('td', {}, taskLink(row.task)),
        amountCell(row.amount),
        el('td', {}, row.reasons.join(', ')))));
      if (!answer.by_task.length) byTask.append(emptyRow(BY_TASK_COLUMNS.length, 'Nothing earned yet.'));

      const reasons = Object.entries(answer.by_reason);
      byReason.replaceChildren(...reasons.map(([reason, amount]) => el('tr', {}, el('td', {}, reason), amountCell(amount))));
      if (!reasons.length) byReason.append(emptyRow(BY_REASON_COLUMNS.length, 'Nothing earned yet.'));

      slashes.replaceChildren(...answer.slashes.map((slash) => el('tr', {},
        el('td', { class: 'num' }, slash.height),
        amountCell(slash.amount),
        el('td', {}, slash.reason))));
      if (!answer.slashes.length) slashes.append(emptyRow(SLASH_COLUMNS.length, 'No slashes.'));
      report(problem, null);
    } catch (error) {
      report(problem, error);
    }
  });
  ctx.refresh();
}

// --- The page ----------------------------------------------------------------------

dashboard(view, {
  account: () => api('/api/provider'),
  routes: [
    [/^#?\/?$/, overview],
    [/^#\/work$/, work],
    [/^#\/task\/([^/]+)$/, task],
    [/^#\/earnings$/, earnings],
  ],
  sections: { task: 'work' },
});
