// The network explorer: a read-only hash router over the node's JSON API (/v1), each view
// rendered into #view. The shapes are ogpu_client::types and ogpu_chain's records as serde
// writes them: amounts are exact decimal strings, shown as given; an Event is tagged by
// `type`; Phase, Outcome and Stage are externally tagged (a unit variant is a bare string,
// another `{variant: fields}`). One /v1/events stream keeps the header, the home view and
// pages waiting on the chain up to date: nothing polls on a timer.
import {
  api, coalesce, el, emptyRow, facts, mono, shortId, size, sizeOfMiB, stream, table,
} from '../common/dash.js';

const view = document.getElementById('view');

// The view on screen and what it does on a finalized block (`onBlock`), on a chain event
// (`onChain`) and after the feed missed some (`refresh`).
let current = {};

const HEX64 = /^[0-9a-f]{64}$/i;

// --- Helpers -------------------------------------------------------------------------

// An error as a sentence: the server's detail, then its code and status.
function problem(error) {
  return el('p', { class: 'error', role: 'alert' },
    error.status === 404 ? 'Not found: ' : '', error.message,
    error.status ? el('span', { class: 'muted' }, ` (${error.error}, HTTP ${error.status})`) : '');
}

// Fills `box` with what `render` builds from `fetch()`'s answer (a node or an array of
// them, false ones skipped), or with the error; `box.dataset.state` says which. Answers
// the (coalesced) reload. A view's boxes are in the page before their answer comes, so
// an answer for a view the reader has left lands in detached nodes, never in the next.
function loader(box, fetch, render) {
  return coalesce(async () => {
    try {
      box.replaceChildren(...[render(await fetch())].flat().filter(Boolean));
      box.dataset.state = 'ok';
    } catch (error) {
      if (!error.status) console.error(error); // not an answer of the server: a bug, or the network
      box.replaceChildren(problem(error));
      box.dataset.state = 'error';
    }
  });
}

// A view's heading and the box its content will fill.
function page(title) {
  const box = el('div', {}, el('p', { class: 'muted' }, 'Loading…'));
  view.append(el('h1', {}, title), box);
  return box;
}

const card = (title, ...content) => el('section', { class: 'card' }, el('h2', {}, title), content);

// Label/value pairs as a list; a pair whose value is null or undefined is left out.
const details = (pairs) => el('dl', { class: 'facts' }, facts(pairs.filter(([, value]) => value != null)));

// A table of `rows`, or of one row saying `empty`.
const rowsTable = (id, columns, rows, empty) =>
  table(id, columns, el('tbody', {}, rows.length ? rows : emptyRow(columns.length, empty)));

const cell = (content, cls) => el('td', { class: cls }, content ?? '—');

// Links: every id, address and hash goes to its page, shortened unless `full` (the title
// always has it whole). A blob (program, model, input, output) has no page here: the link
// downloads its bytes.
const ref = (kind, id, full = false) =>
  el('a', { href: `#/${kind}/${id}`, class: 'mono', title: id }, full ? id : shortId(id));
const blockRef = (height) => el('a', { href: `#/block/${height}`, class: 'num' }, height);
const blobRef = (hash, full = false) =>
  el('a', { href: `/v1/blobs/${hash}`, class: 'mono', title: `${hash} (download)`, download: true },
    full ? hash : shortId(hash));

// A hash or key in full, in monospace, where it has no page to link to.
const monoText = (text) => el('span', { class: 'mono' }, text);

const words = (name) => name.replaceAll('_', ' ');
const plural = (count, one, many = `${one}s`) => `${count} ${count === 1 ? one : many}`;
const ogpu = (amount) => `${amount} oGPU`;
const time = (ms) => el('time', { datetime: new Date(ms).toISOString() }, new Date(ms).toLocaleString());

// Nodes joined by ", ".
const list = (nodes) => nodes.flatMap((node, i) => (i ? [', ', node] : [node]));

// An externally tagged enum's variant name and its fields (undefined for a unit variant).
const variant = (value) => (typeof value === 'string' ? [value] : Object.entries(value)[0]);

// A base-unit count (a string of digits, 18 decimals) as an amount's decimal string.
function fromUnits(units) {
  const digits = units.padStart(19, '0');
  const fraction = digits.slice(-18).replace(/0+$/, '');
  const whole = digits.slice(0, -18).replace(/^0+(?=\d)/, '');
  return fraction ? `${whole}.${fraction}` : whole;
}

// --- Chain records in words ----------------------------------------------------------

function outcome(value) {
  const [name, detail] = variant(value);
  switch (name) {
    case 'completed': return ['completed, output ', blobRef(detail.output)];
    case 'failed': return `failed: ${detail}`;
    case 'unfilled': {
      // The screening report: how many providers fell at each requirement.
      const reasons = Object.entries(detail).filter(([key, count]) => key !== 'providers' && count > 0);
      const why = reasons.map(([key, count]) => `${count} ${words(key)}`).join(', ');
      return `unfilled: of ${detail.providers} providers, ${why || 'none bid'}`;
    }
    default: return words(name);
  }
}

const outcomeName = (value) => variant(value)[0];

// One chain event in words, its ids and addresses linked.
function describe(event) {
  const taskRef = event.task && ref('task', event.task);
  const who = (address) => ref('account', address);
  switch (event.type) {
    case 'task_submitted':
      return ['Task ', taskRef, ' submitted by ', who(event.client), `, reserving ${ogpu(event.reserved)}`];
    case 'auction_opened':
      return [`Auction round ${event.round} opened for task `, taskRef,
        `: sealed bids until block ${event.commit_end}, reveals until ${event.reveal_end}`];
    case 'awarded': return ['Task ', taskRef, ' awarded to ', who(event.provider), ` at ${ogpu(event.price)}`];
    case 'race_opened':
      return [`Race round ${event.round} opened for pool job `, taskRef, `: commits until block ${event.commit_end}`];
    case 'verification_started':
      return ['Verification (', words(event.reason), ') of task ', taskRef, ' by ', list(event.verifiers.map(who))];
    case 'verdict':
      return ['Verdict on ', who(event.executor), ' for task ', taskRef, event.pass ? ': pass' : ': fail'];
    case 'verification_skipped':
      return ['Verification (', words(event.reason), ') of task ', taskRef,
        ' skipped: no eligible verifier or budget left'];
    case 'slashed': return [who(event.who), ` slashed ${ogpu(event.amount)} (${words(event.reason)})`];
    case 'paid': return [who(event.to), ` paid ${ogpu(event.amount)} (${words(event.why)}) on task `, taskRef];
    case 'refunded': return [who(event.client), ` refunded ${ogpu(event.amount)} from task `, taskRef];
    case 'topped_up':
      return ['Task ', taskRef, ` price cap raised to ${ogpu(event.price_cap)}, ${ogpu(event.added)} more reserved`];
    case 'task_ended': return ['Task ', taskRef, ' ended: ', outcome(event.outcome)];
    case 'pool_created': return ['Pool ', ref('pool', event.pool), ' created'];
    // A proposal's id is the hash of the transaction that made it.
    case 'proposal_passed': return ['Proposal ', ref('tx', event.proposal), ' passed'];
    case 'proposal_rejected': return ['Proposal ', ref('tx', event.proposal), ' rejected'];
    case 'block_reward': return [`Block reward of ${ogpu(event.amount)}`];
    case 'epoch_rewards': return [`Epoch ${event.epoch} rewards: ${ogpu(event.paid)} paid to validators`];
    default: return [words(event.type)]; // a kind newer than this page
  }
}

// EventRecords ({height, event}), given oldest first: a history in that order, or the
// latest of a stream newest first.
function events(id, records, empty, { newestFirst = false } = {}) {
  if (!records.length) return el('p', { class: 'muted' }, empty);
  return el(newestFirst ? 'ul' : 'ol', { id },
    (newestFirst ? records.toReversed() : records).map(({ height, event }) => el('li', { 'data-type': event.type },
      el('span', { class: 'muted' }, 'block '), blockRef(height), ' · ', describe(event))));
}

const TX_COLUMNS = ['Transaction', 'Kind', 'Sender', 'Nonce', 'Fee (oGPU)', 'Block', 'Result'];

// TxSummaries: every field but the hash is null where the node has no record of it.
function txTable(id, txs, empty) {
  return rowsTable(id, TX_COLUMNS, txs.map((tx) => el('tr', { 'data-tx': tx.hash },
    el('td', {}, ref('tx', tx.hash)),
    cell(tx.kind && words(tx.kind)),
    cell(tx.sender && ref('account', tx.sender)),
    cell(tx.nonce, 'num'),
    cell(tx.fee, 'amount'),
    cell(tx.height != null ? blockRef(tx.height) : null, 'num'),
    cell(tx.sender && (tx.error ? `refused: ${tx.error}` : 'ok'), 'wrap'))), empty);
}

// --- Home ----------------------------------------------------------------------------

const LATEST_BLOCKS = 10;
const LATEST_EVENTS = 20;

function home(ctx) {
  const input = el('input', {
    id: 'search', type: 'search', size: 48, autocomplete: 'off', spellcheck: 'false',
    placeholder: 'e.g. 42, ogpu1…, or a 64-hex id', 'aria-describedby': 'search-error',
  });
  const button = el('button', { type: 'submit', 'aria-label': 'Search' }, 'Search');
  const searchError = el('p', { id: 'search-error', class: 'error', role: 'alert', hidden: true });
  const form = el('form', { role: 'search', class: 'stack', novalidate: true },
    el('label', { for: 'search' }, 'Search by height, address, task, transaction or pool'),
    el('div', { class: 'row' }, input, button),
    searchError);
  const statusBox = el('div', {}, el('p', { class: 'muted' }, 'Loading…'));
  const eventsBox = el('div');
  const blocksBox = el('div');

  view.append(
    el('h1', {}, 'Network explorer'),
    el('section', { class: 'card' }, form),
    el('div', { class: 'columns' }, card('Chain', statusBox), card('Recent events', eventsBox)),
    card('Latest blocks', blocksBox));

  const say = (text) => {
    searchError.textContent = text;
    searchError.hidden = false;
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const query = input.value.trim();
    searchError.hidden = true;
    button.disabled = true;
    try {
      const target = await resolve(query);
      if (target) location.hash = target;
      else if (!query) say('Enter something to search for.');
      else say(`${query}: nothing found. Enter a block height, an ogpu1… address, or a task, transaction or pool id`
        + ' (64 hex digits).');
    } catch (error) {
      say(error.message);
    } finally {
      button.disabled = false;
    }
  });

  // The latest blocks by height: {height, hash, time_ms, txs (a count), events, live}. A
  // block comes from the feed (`live`: its chain events follow it there) or from
  // /v1/blocks (with its events); whichever comes first is kept, so no event shows twice.
  const blocks = new Map();

  function keep(block) {
    if (blocks.has(block.height)) return;
    blocks.set(block.height, block);
    for (const height of [...blocks.keys()].sort((a, b) => b - a).slice(LATEST_BLOCKS)) blocks.delete(height);
  }

  function showBlocks() {
    const newest = [...blocks.values()].sort((a, b) => b.height - a.height);
    const rows = newest.map((block) => el('tr', { 'data-height': block.height },
      el('td', { class: 'num' }, blockRef(block.height)),
      el('td', {}, el('a', { href: `#/block/${block.height}`, class: 'mono', title: block.hash }, shortId(block.hash))),
      el('td', {}, time(block.time_ms)),
      el('td', { class: 'num' }, block.txs)));
    blocksBox.replaceChildren(rowsTable('blocks', ['Height', 'Hash', 'Time', 'Transactions'], rows, 'No blocks yet.'));
    const records = newest.toReversed().flatMap(({ height, events: all }) => all.map((event) => ({ height, event })));
    eventsBox.replaceChildren(
      events('events', records.slice(-LATEST_EVENTS), 'No events in the latest blocks.', { newestFirst: true }));
  }

  const showStatus = (status) => statusBox.replaceChildren(details([
    ['Chain id', el('span', { id: 'chain-id', class: 'mono' }, status.chain_id)],
    ['Height', el('span', { id: 'height' }, blockRef(status.height))],
    ['Validators', el('span', { id: 'validators' }, el('a', { href: '#/validators' }, status.validators), ' active')],
    ['Peers', status.peers],
    ['Mempool', `${status.mempool} pending`],
    ['Transactions', `${status.finalized_txs} finalized since the node started`],
    ['Listening on', status.listen.length ? status.listen.map((where) => el('div', { class: 'mono' }, where))
      : 'nothing'],
  ]));

  const refreshStatus = coalesce(async () => {
    try {
      showStatus(await api('/v1/status'));
    } catch (error) {
      statusBox.replaceChildren(problem(error));
    }
  });

  // The status, then the blocks up to its height (height 0, genesis, is not a block).
  ctx.refresh = async () => {
    try {
      const status = await api('/v1/status');
      showStatus(status);
      const heights = [];
      for (let height = status.height; height > 0 && heights.length < LATEST_BLOCKS; height -= 1) heights.push(height);
      const answers = await Promise.allSettled(heights.map((height) => api(`/v1/blocks/${height}`)));
      for (const answer of answers) {
        if (answer.status === 'fulfilled') keep({ ...answer.value, txs: answer.value.txs.length, live: false });
      }
      showBlocks();
    } catch (error) {
      statusBox.replaceChildren(problem(error));
    }
  };
  ctx.onBlock = (block) => {
    keep({ ...block, events: [], live: true });
    showBlocks();
    refreshStatus();
  };
  ctx.onChain = ({ height, event }) => {
    const block = blocks.get(height);
    if (!block?.live) return;
    block.events.push(event);
    showBlocks();
  };
  ctx.refresh();
}

// Where a search goes, or null. A task's and a pool's id is the hash of the transaction
// that made it, so a 64-hex id is asked for as a task, then a pool, then a transaction:
// the record's page says more than its transaction's.
async function resolve(query) {
  if (/^\d+$/.test(query)) return `#/block/${BigInt(query)}`;
  if (/^ogpu1/i.test(query)) return `#/account/${query.toLowerCase()}`;
  if (!HEX64.test(query)) return null;
  const id = query.toLowerCase();
  for (const [path, kind] of [['tasks', 'task'], ['pools', 'pool'], ['txs', 'tx']]) {
    try {
      await api(`/v1/${path}/${id}`);
      return `#/${kind}/${id}`;
    } catch (error) {
      if (error.status !== 404) throw error;
    }
  }
  return null;
}

// --- Blocks and transactions ---------------------------------------------------------

function block(ctx, height) {
  const box = page(`Block ${height}`);
  const load = loader(box, () => api(`/v1/blocks/${height}`), (block) => [
    // Block 1's parent is genesis, which is not a block here.
    el('p', { class: 'row' },
      block.height > 1 && el('a', { href: `#/block/${block.height - 1}`, rel: 'prev' }, '← previous block'),
      el('a', { href: `#/block/${block.height + 1}`, rel: 'next' }, 'next block →')),
    el('section', { class: 'card' }, details([
      ['Height', block.height],
      ['Hash', monoText(block.hash)],
      ['Parent', block.height > 1
        ? el('a', { href: `#/block/${block.height - 1}`, class: 'mono' }, block.parent)
        : monoText(block.parent)],
      ['Proposer', ref('account', block.proposer, true)],
      ['Time', time(block.time_ms)],
      ['Transaction root', monoText(block.tx_root)],
      ['State root', monoText(block.state_root)],
      ['Randomness', monoText(block.randomness)],
    ])),
    card(`Transactions (${block.txs.length})`, txTable('block-txs', block.txs, 'No transactions in this block.')),
    card(`Events (${block.events.length})`, events('block-events',
      block.events.map((event) => ({ height: block.height, event })), 'No events in this block.')),
  ]);
  // A height not finalized yet answers unknown_block: shown once it is (a block the feed
  // skipped comes with `lagged`, which reloads anyway).
  ctx.onBlock = (finalized) => {
    if (box.dataset.state === 'error' && finalized.height === Number(height)) load();
  };
  ctx.refresh = load;
  load();
}

// What a transaction of this kind made, when the chain applied it: the record's id is
// the transaction's hash.
const MADE = { submit_task: ['Task', 'task'], create_pool: ['Pool', 'pool'] };

function tx(ctx, hash) {
  const box = page('Transaction');
  const load = loader(box, async () => {
    const found = await api(`/v1/txs/${hash}`);
    if (found.status !== 'finalized') return { found };
    // The kind, sender, nonce and fee offered are in the block's summary of it.
    const block = await api(`/v1/blocks/${found.height}`).catch(() => null);
    return { found, summary: block?.txs.find((tx) => tx.hash === found.hash) };
  }, ({ found, summary }) => {
    const made = found.ok && MADE[summary?.kind];
    const finalized = found.status === 'finalized';
    const status = found.ok === false ? 'failed' : found.status;
    const badge = el('span', { id: 'tx-status', class: 'badge', 'data-status': status }, found.status);
    return el('section', { class: 'card' }, details([
      ['Hash', monoText(found.hash)],
      ['Status', badge],
      ['Result', !finalized ? 'waiting in the mempool' : found.ok ? 'applied' : `refused by the chain: ${found.error}`],
      ['Block', found.height != null ? blockRef(found.height) : null],
      ['Position in block', found.index],
      ['Kind', summary?.kind && words(summary.kind)],
      [made?.[0], made ? ref(made[1], found.hash, true) : null],
      ['Sender', summary?.sender && ref('account', summary.sender, true)],
      ['Nonce', summary?.nonce],
      ['Fee offered', summary?.fee && ogpu(summary.fee)],
      ['Fee paid', found.fee_paid && ogpu(found.fee_paid)],
    ]));
  });
  // A pending transaction is shown finalized once a block holds it.
  ctx.onBlock = () => {
    if (box.querySelector('#tx-status')?.textContent === 'pending') load();
  };
  ctx.refresh = load;
  load();
}

// --- Accounts and tasks --------------------------------------------------------------

const BALANCES = [
  ['balance', 'Available'],
  ['escrow', 'In escrow'],
  ['trust_lock', 'Trust lock'],
  ['staked', 'Staked'],
  ['unbonding', 'Unbonding'],
];

function account(ctx, address) {
  const box = page('Account');
  const load = () => Promise.all(['', '/txs', '/events'].map((part) => api(`/v1/accounts/${address}${part}`)));
  ctx.refresh = loader(box, load, ([money, sent, named]) => [
    el('p', { class: 'mono', id: 'address' }, money.address),
    card('Balance', details([
      ...BALANCES.map(([key, label]) => [label, el('span', { id: `balance-${key}` }, ogpu(money[key]))]),
      ['Next nonce', money.nonce],
    ])),
    card('Transactions sent', el('p', { class: 'muted' }, 'The latest 100, newest first.'),
      txTable('account-txs', sent.txs.toReversed(), 'No transactions sent.')),
    card('Events', el('p', { class: 'muted' }, 'The latest 100 naming this account, newest first.'),
      events('account-events', named.events, 'No events name this account.', { newestFirst: true })),
  ]);
  ctx.refresh();
}

function within(policy) {
  return policy.tolerance ? `, within ${policy.tolerance}` : '';
}

function verification(policy) {
  switch (policy.policy) {
    case 'none': return 'none (reputation only)';
    case 'replicate': return `replicated: ${policy.n} executors, ${policy.quorum} must agree${within(policy)}`;
    case 'spot_check': return `spot check with probability ${policy.p}${within(policy)}`;
    case 'proof_of_learning':
      return `proof of learning: ${policy.segments} segments replayed, tolerance ${policy.tolerance}`;
    default: return words(policy.policy);
  }
}

function phaseDetail(phase) {
  const [name, fields] = variant(phase);
  switch (name) {
    case 'bidding':
      return `sealed bids until block ${fields.commit_end}, reveals until ${fields.reveal_end}; `
        + plural(Object.keys(fields.bids).length, 'bid');
    case 'revealing': return `results revealed until block ${fields.reveal_end}`;
    case 'racing':
      return `commits until block ${fields.commit_end}, reveals until ${fields.reveal_end}; `
        + plural(fields.entries.length, 'entry', 'entries');
    case 'verifying': return `${words(fields.reason)}: reports until block ${fields.report_end}`;
    case 'challengeable': return `open to challenge until block ${fields.challenge_end}`;
    case 'done': return outcome(fields);
    default: return null;
  }
}

function specFacts(task) {
  const { spec } = task;
  const { market, requirements: req } = spec;
  const auction = market.kind === 'auction';
  const inputs = Object.entries(spec.workload.inputs);
  return details([
    ['Name', el('span', { id: 'task-name' }, spec.name)],
    ['Kind', spec.workload.kind],
    ['Market', auction ? `auction, bids for ${plural(market.bid_window, 'block')}`
      : ['pool ', ref('pool', market.pool)]],
    // The cap now: a top-up raises it above the spec's.
    ['Max price', [ogpu(task.price_cap),
      auction && market.max_price !== task.price_cap ? ` (${ogpu(market.max_price)} at submission)` : '']],
    ['Requirements', `${plural(req.gpus, 'GPU')}, ${sizeOfMiB(req.min_vram_mb)} VRAM or more, `
      + `models: ${req.models.join(', ') || 'any'}, reputation ${req.min_reputation} or more`],
    ['Deadline', plural(spec.deadline_blocks, 'block')],
    ['Verification', verification(spec.verification)],
    ['Program', blobRef(spec.workload.program)],
    ['Inputs', inputs.length ? list(inputs.map(([name, hash]) => [`${name} `, blobRef(hash)])) : 'none'],
  ]);
}

function stateFacts(task) {
  const detail = phaseDetail(task.phase);
  return details([
    ['Client', ref('account', task.client)],
    ['Submitted at block', blockRef(task.submitted_at)],
    ['Phase', [task.phase_name, detail && [': ', detail]]],
    ['Next step at block', task.due != null ? blockRef(task.due) : null],
    ['Rounds', task.rounds],
    ['Escrow', ogpu(task.escrow)],
    ['Verification budget', ogpu(task.verification_budget)],
    ['Client lock', ogpu(task.client_lock)],
    ['Challenge', task.challenge && [ref('account', task.challenge.challenger), `, bond ${ogpu(task.challenge.bond)}`]],
  ]);
}

const executorRow = (executor) => {
  const [stage, fields] = variant(executor.stage);
  return el('tr', {},
    el('td', {}, ref('account', executor.provider)),
    el('td', { class: 'amount' }, executor.price),
    el('td', {}, stage),
    el('td', { class: 'num' }, executor.stage_due),
    cell(stage === 'revealed' ? blobRef(fields.output) : null));
};

const verifierRow = (slot) => {
  const reports = Object.values(slot.reports);
  return el('tr', {},
    el('td', {}, ref('account', slot.verifier)),
    el('td', { class: 'amount' }, slot.weight),
    cell(slot.segment, 'num'),
    el('td', { class: 'wrap' }, reports.length
      ? list(reports.map((report) => [ref('account', report.subject), report.pass ? ' pass' : ' fail']))
      : 'none yet'));
};

function task(ctx, id) {
  const phase = el('span', { id: 'task-phase', class: 'badge', hidden: true });
  const box = el('div', {}, el('p', { class: 'muted' }, 'Loading…'));
  view.append(el('div', { class: 'title-row' }, el('h1', {}, 'Task'), phase), box);

  const load = loader(box, () => api(`/v1/tasks/${id}`), (task) => {
    const [name, fields] = variant(task.phase);
    phase.textContent = task.phase_name;
    phase.dataset.status = name === 'done' ? outcomeName(fields) : task.phase_name; // colours a finished task's outcome
    phase.hidden = false;
    return [
      el('p', { class: 'mono' }, task.id),
      el('div', { class: 'columns' }, card('Spec', specFacts(task)), card('State', stateFacts(task))),
      card('Executors', rowsTable('executors', ['Provider', 'Price (oGPU)', 'Stage', 'Due by block', 'Output'],
        task.executors.map(executorRow), 'No executors yet.')),
      task.verifiers.length > 0 && card('Verifiers',
        rowsTable('verifiers', ['Verifier', 'Weight (oGPU)', 'Segment', 'Reports'], task.verifiers.map(verifierRow))),
      card('Timeline', events('timeline', task.events, 'No events yet.')),
    ];
  });
  ctx.onChain = ({ event }) => {
    if (event.task === id) load();
  };
  ctx.refresh = load;
  load();
}

// --- Lists of the market and the chain -----------------------------------------------

const device = ({ kind, model, memory_mb: memory, gflops }) =>
  el('div', {}, `${kind.toUpperCase()} ${model}, ${sizeOfMiB(memory)}, ${gflops} GFLOPS`);

function providers(ctx) {
  const box = page('Providers');
  ctx.refresh = loader(box, () => api('/v1/providers?limit=1000'), ({ providers: found }) => rowsTable('providers',
    ['Provider', 'Devices', 'Total GFLOPS', 'Stake (oGPU)', 'Reputation', 'Region', 'Jailed until'],
    found.map((provider) => el('tr', { 'data-address': provider.address },
      el('td', {}, ref('account', provider.address)),
      el('td', {}, provider.profile.devices.map(device)),
      el('td', { class: 'num' }, provider.profile.devices.reduce((sum, { gflops }) => sum + gflops, 0)),
      el('td', { class: 'amount' }, provider.stake),
      el('td', { class: 'num' }, `${provider.reputation} / 1000`),
      el('td', {}, provider.profile.region),
      cell(provider.jailed_until > 0 ? blockRef(provider.jailed_until) : null, 'num'))),
    'No providers are registered.'));
  ctx.refresh();
}

function pools(ctx) {
  const box = page('Pools');
  ctx.refresh = loader(box, () => api('/v1/pools?limit=1000'), ({ pools: found }) => rowsTable('pools',
    ['Pool', 'Name', 'Owner', 'Kind', 'Price per job (oGPU)', 'Minimum stake (oGPU)', 'Subscribers'],
    found.map((pool) => el('tr', { 'data-pool': pool.id },
      el('td', {}, ref('pool', pool.id)),
      el('td', {}, pool.spec.name),
      el('td', {}, ref('account', pool.owner)),
      el('td', {}, pool.spec.kind),
      el('td', { class: 'amount' }, pool.spec.price_per_job),
      el('td', { class: 'amount' }, pool.spec.min_stake),
      el('td', { class: 'num' }, Object.keys(pool.subscribers).length))),
    'No pools yet.'));
  ctx.refresh();
}

function pool(ctx, id) {
  const box = page('Pool');
  ctx.refresh = loader(box, () => api(`/v1/pools/${id}`), (pool) => [
    el('p', { class: 'mono' }, pool.id),
    el('section', { class: 'card' }, details([
      // The pool's id is the hash of the transaction that created it.
      ['Created by', ref('tx', pool.id)],
      ['Owner', ref('account', pool.owner, true)],
      ['Name', pool.spec.name],
      ['Kind', pool.spec.kind],
      ['Price per job', ogpu(pool.spec.price_per_job)],
      ['Verification rate', `${+(pool.spec.verification_rate * 100).toFixed(4)}% of jobs re-executed`],
      ['Minimum stake', ogpu(pool.spec.min_stake)],
      ['Model', blobRef(pool.spec.model, true)],
    ])),
    card('Subscribers', rowsTable('subscribers', ['Subscriber', 'Stake (oGPU)'],
      Object.entries(pool.subscribers).map(([address, stake]) => el('tr', {},
        el('td', {}, ref('account', address)),
        el('td', { class: 'amount' }, stake))),
      'No subscribers yet.')),
  ]);
  ctx.refresh();
}

function validators(ctx) {
  const box = page('Validators');
  ctx.refresh = loader(box, () => api('/v1/validators'), ({ validators: found }) => rowsTable('validators',
    ['Validator', 'In this epoch’s set', 'Stake (oGPU)', 'Key', 'Jailed until'],
    found.map(({ address, validator, active }) => el('tr', { 'data-address': address },
      el('td', {}, ref('account', address)),
      el('td', {}, active ? 'active' : 'not active'),
      el('td', { class: 'amount' }, validator.stake),
      el('td', {}, mono(validator.key)),
      cell(validator.jailed_until > 0 ? blockRef(validator.jailed_until) : null, 'num'))),
    'No validators are bonded.'));
  ctx.refresh();
}

// A parameter's value with its unit, by the naming of Params' fields. Amounts are
// decimal strings; the rest are numbers.
function paramValue(key, value) {
  if (typeof value === 'string') return ogpu(value);
  if (key.endsWith('_bps')) return `${value / 100}% (${value} basis points)`;
  if (key.endsWith('_blocks')) return plural(value, 'block');
  if (key.endsWith('_bytes')) return `${size(value)} (${value} bytes)`;
  return String(value);
}

function params(ctx) {
  const box = page('Parameters');
  ctx.refresh = loader(box, () => api('/v1/params'), (found) => [
    el('p', { class: 'muted' }, 'The chain’s parameters now. Governance may change all but the reward schedule.'),
    el('section', { class: 'card' }, el('dl', { id: 'params', class: 'facts' },
      Object.entries(found).map(([key, value]) =>
        [el('dt', { class: 'mono' }, key), el('dd', { 'data-key': key }, paramValue(key, value))]))),
  ]);
  ctx.refresh();
}

// ParamKeys whose value is an amount in base units (the others count blocks, basis
// points, rounds or bytes).
const AMOUNT_KEYS = new Set(['min_fee', 'min_validator_stake', 'min_provider_stake', 'challenge_bond']);

function proposals(ctx) {
  const box = page('Proposals');
  ctx.refresh = loader(box, async () => {
    // A change's `value` is a u128, past what a JSON number keeps exactly in JavaScript
    // (2^53): it is read as its digits.
    const text = await (await api('/v1/proposals', { json: false })).text();
    return JSON.parse(text.replace(/"value"\s*:\s*(\d+)/g, '"value":"$1"'));
  }, ({ proposals: found }) => [
    el('p', { class: 'muted' }, 'Proposals to change a parameter that are still being voted on.'),
    rowsTable('proposals', ['Proposal', 'Change', 'Proposer', 'Voting ends at block', 'For', 'Against'],
      found.map(({ id, proposal }) => {
        const { key, value } = proposal.change;
        const votes = Object.values(proposal.votes);
        return el('tr', { 'data-proposal': id },
          el('td', {}, ref('tx', id)),
          el('td', {}, monoText(key), ' → ',
            AMOUNT_KEYS.has(key) ? ogpu(fromUnits(value)) : paramValue(key, Number(value))),
          el('td', {}, ref('account', proposal.proposer)),
          el('td', { class: 'num' }, proposal.voting_ends),
          el('td', { class: 'num' }, votes.filter(Boolean).length),
          el('td', { class: 'num' }, votes.filter((approve) => !approve).length));
      }), 'No proposals are being voted on.'),
  ]);
  ctx.refresh();
}

// --- Router --------------------------------------------------------------------------

const ROUTES = [
  [/^#?\/?$/, home],
  [/^#\/block\/(\d+)$/, block],
  [/^#\/tx\/([^/]+)$/, tx],
  [/^#\/account\/([^/]+)$/, account],
  [/^#\/task\/([^/]+)$/, task],
  [/^#\/pool\/([^/]+)$/, pool],
  [/^#\/providers$/, providers],
  [/^#\/pools$/, pools],
  [/^#\/validators$/, validators],
  [/^#\/params$/, params],
  [/^#\/proposals$/, proposals],
];

// A %-escaped path part as text; a malformed one as it is (the API then says what is wrong).
function decode(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

// The nav link a view belongs under, by the first part of its route.
const SECTIONS = { '': '#/', pool: '#/pools' };

function route() {
  current = {};
  view.replaceChildren();
  const hash = location.hash;
  const first = hash.split('/')[1] ?? '';
  const section = SECTIONS[first] ?? `#/${first}`;
  for (const link of document.querySelectorAll('header nav a')) {
    if (link.getAttribute('href') === section) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  for (const [pattern, render] of ROUTES) {
    const match = pattern.exec(hash);
    if (!match) continue;
    // Path parameters go back into API paths: encoded, and hex ids in one case so that
    // live events about them match.
    const args = match.slice(1).map((part) => {
      const text = decode(part);
      return encodeURIComponent(HEX64.test(text) ? text.toLowerCase() : text);
    });
    return render(current, ...args);
  }
  view.append(el('h1', {}, 'Not found'), el('p', {}, `Nothing at ${hash}. `, el('a', { href: '#/' }, 'Go home.')));
}

window.addEventListener('hashchange', () => {
  route();
  view.focus(); // so keyboard and screen reader users start at the new view
});

const headHeight = document.getElementById('head-height');
api('/v1/status').then((status) => {
  document.getElementById('head-chain').textContent = status.chain_id;
  headHeight.textContent = status.height;
}, () => {
  headHeight.textContent = '?';
});

route();

const feed = stream('/v1/events', {
  block: (block) => {
    headHeight.textContent = block.height;
    current.onBlock?.(block);
  },
  chain: (record) => current.onChain?.(record),
  // The node dropped blocks this page was too slow for: read the view again.
  lagged: () => current.refresh?.(),
});
// The browser reconnects by itself; what was finalized meanwhile was missed.
let connected = false;
feed.addEventListener('open', () => {
  if (connected) current.refresh?.();
  connected = true;
});
