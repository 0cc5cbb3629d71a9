// berth console: pages drawn from API answers. Every value is put on the page
// as text (never as markup), and every call goes through /console/api with the
// session's form token, as the signed-in key's owner.
'use strict';

// ---- page building ---------------------------------------------------------

/** An element; strings and numbers become text nodes, arrays are flattened. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked' || k === 'selected' || k === 'disabled') el[k] = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  const add = (c) => {
    if (c === null || c === undefined || c === false) return;
    if (Array.isArray(c)) c.forEach(add);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  };
  children.forEach(add);
  return el;
}

let uid = 0;
const nextId = (p) => `${p}-${++uid}`;

/** A labelled control with a place for its error. */
function field(label, control, hint) {
  control.id = control.id || nextId('f');
  const err = h('div', { class: 'field-error', id: control.id + '-error', role: 'alert' });
  control.setAttribute('aria-describedby', err.id);
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control,
    hint ? h('div', { class: 'hint' }, hint) : null, err);
}

function fieldError(control, message) {
  const err = document.getElementById(control.id + '-error');
  if (err) err.textContent = message || '';
  if (message) control.setAttribute('aria-invalid', 'true');
  else control.removeAttribute('aria-invalid');
}

function select(options, value, attrs) {
  return h('select', attrs || {}, options.map(([v, label]) =>
    h('option', { value: v, selected: v === value }, label)));
}

function table(headers, rows, caption) {
  return h('table', {}, caption ? h('caption', { class: 'hint' }, caption) : null,
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows.length ? rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c))))
      : h('tr', {}, h('td', { colspan: headers.length, class: 'hint' }, 'Nothing here yet.'))));
}

function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) =>
    [h('dt', {}, k), h('dd', {}, v === undefined || v === null || v === '' ? '-' : v)]));
}

const statusText = (s) => h('span', { class: 'status-' + s }, s);
const when = (t) => (t ? new Date(t * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC') : '-');
const lastPart = (arn) => (arn || '').split('/').pop();
const familyRev = (arn) => (arn || '').split('/').pop();

function alertBox(e) {
  return h('div', { class: 'alert', role: 'alert' }, h('strong', {}, e.code || 'Error'), ': ', e.message || String(e));
}

// ---- the API ---------------------------------------------------------------

let me = null;

class ApiError extends Error {
  constructor(code, message) { super(message); this.code = code; }
}

/** An EC2/IAM/STS XML answer as plain objects; `item`/`member` lists become arrays. */
function fromXml(el) {
  const kids = Array.from(el.children);
  if (!kids.length) return el.textContent;
  if (kids.every((k) => k.tagName === 'item' || k.tagName === 'member')) return kids.map(fromXml);
  const o = {};
  for (const k of kids) o[k.tagName] = fromXml(k);
  return o;
}
const list = (v) => (Array.isArray(v) ? v : []);

async function call(service, operation, input) {
  const r = await fetch('/console/api', {
    method: 'POST', credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'x-berth-csrf': me ? me.csrf : '' },
    body: JSON.stringify({ service, operation, input: input || {} }),
  });
  if (r.status === 401) { me = null; await start(); throw new ApiError('SignedOut', 'Your session ended: sign in again.'); }
  const text = await r.text();
  const type = r.headers.get('content-type') || '';
  if (type.includes('xml')) {
    const doc = new DOMParser().parseFromString(text, 'application/xml');
    if (!r.ok) {
      const code = doc.querySelector('Code');
      const msg = doc.querySelector('Message');
      throw new ApiError(code ? code.textContent : String(r.status), msg ? msg.textContent : text);
    }
    return fromXml(doc.documentElement);
  }
  const body = text ? JSON.parse(text) : {};
  if (!r.ok) throw new ApiError((body.__type || String(r.status)).split('#').pop(), body.message || body.Message || text);
  return body;
}

/** Every page of a paginated ECS-style list, bounded. */
async function all(service, operation, input, key) {
  let out = [];
  let token;
  for (let i = 0; i < 200; i++) {
    const page = await call(service, operation, Object.assign({}, input, token ? { nextToken: token } : {}));
    out = out.concat(page[key] || []);
    token = page.nextToken;
    if (!token) break;
  }
  return out;
}

/** Tasks described 100 at a time, two batches at once (more only queue on a small server). */
async function describeTasks(cluster, arns) {
  const batches = [];
  for (let i = 0; i < arns.length; i += 100) batches.push(arns.slice(i, i + 100));
  const pages = [];
  for (let i = 0; i < batches.length; i += 2) {
    pages.push(...await Promise.all(batches.slice(i, i + 2).map((tasks) => call('ecs', 'DescribeTasks', { cluster, tasks, include: ['TAGS'] }))));
  }
  return pages.flatMap((page) => page.tasks || []);
}

/** EC2 filters as query parameters. */
function filters(pairs) {
  const q = {};
  pairs.forEach(([name, values], i) => {
    q[`Filter.${i + 1}.Name`] = name;
    values.forEach((v, j) => { q[`Filter.${i + 1}.Value.${j + 1}`] = v; });
  });
  return q;
}

// ---- sign-in, header, routing -----------------------------------------------

const app = () => document.getElementById('app');
let timers = [];
// Each route (and sign-in) is a new view; a page still loading for an older view must not draw over it.
let view = 0;
function every(v, ms, fn) { if (v === view) timers.push(setInterval(fn, ms)); }

function show(v, title, ...content) {
  if (v !== view) return;
  document.title = `${title} | berth console`;
  const main = app();
  main.replaceChildren(...content.flat().filter(Boolean));
  main.focus({ preventScroll: true });
}

function showNotice(text) {
  const n = document.getElementById('notice');
  n.textContent = text || '';
  n.hidden = !text;
}

const REGIONS = ['us-east-1', 'us-east-2', 'us-west-1', 'us-west-2', 'eu-west-1', 'eu-central-1', 'ap-southeast-1', 'ap-northeast-1'];

function drawHeader() {
  const who = document.getElementById('who');
  document.getElementById('nav').hidden = !me;
  if (!me) { who.replaceChildren(); return; }
  const regions = REGIONS.includes(me.region) ? REGIONS : [me.region, ...REGIONS];
  const region = select(regions.map((r) => [r, r]), me.region, { id: 'region' });
  region.addEventListener('change', async () => {
    const r = await fetch('/console/session/region', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'x-berth-csrf': me.csrf },
      body: JSON.stringify({ region: region.value }),
    });
    if (r.ok) { me.region = region.value; route(); }
  });
  who.replaceChildren(
    h('span', { title: me.arn }, `Account ${me.account}`),
    h('span', { class: 'hint', style: null }, me.arn),
    h('label', { for: 'region' }, 'Region'), region,
    h('button', { type: 'button', onclick: signOut }, 'Switch account'),
  );
}

async function signOut() {
  await fetch('/console/session', { method: 'DELETE', credentials: 'same-origin', headers: { 'x-berth-csrf': me ? me.csrf : '' } });
  me = null;
  await start();
}

function signInPage(info) {
  const id = h('input', { type: 'text', name: 'accessKeyId', autocomplete: 'username', required: true });
  const secret = h('input', { type: 'password', name: 'secretAccessKey', autocomplete: 'current-password', required: true });
  const region = select(REGIONS.map((r) => [r, r]), 'us-east-1');
  const out = h('div', { role: 'alert' });
  const signIn = async (path, body) => {
    out.replaceChildren();
    const r = await fetch(path, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    const answer = await r.json();
    if (!r.ok) { out.replaceChildren(h('p', { class: 'error' }, answer.message)); return; }
    me = answer;
    await start();
  };
  const form = h('form', {
    onsubmit: (e) => { e.preventDefault(); signIn('/console/session', { accessKeyId: id.value, secretAccessKey: secret.value, region: region.value }); },
  }, field('Access key ID', id), field('Secret access key', secret), field('Region', region),
  h('button', { class: 'primary', type: 'submit' }, 'Sign in'), out);
  show(++view, 'Sign in', h('div', { class: 'signin panel' }, h('h1', {}, 'Sign in to berth'), form,
    info.dev ? h('div', {}, h('h2', {}, 'berth dev'), h('p', { class: 'hint' }, 'On this machine you can use the dev account without typing its key.'),
      h('button', { type: 'button', onclick: () => signIn('/console/session/dev', {}) }, 'Sign in to the dev account')) : null));
}

async function start() {
  const r = await fetch('/console/session', { credentials: 'same-origin' });
  const info = await r.json();
  showNotice(info.notice);
  me = r.ok ? info : null;
  drawHeader();
  if (!me) { timers.forEach(clearInterval); timers = []; signInPage(info); return; }
  route();
}

const ROUTES = [
  [/^#\/clusters\/new$/, () => createClusterPage()],
  [/^#\/clusters\/([^/]+)\/run-task$/, (c) => runTaskPage(c)],
  [/^#\/clusters\/([^/]+)\/tasks\/([^/]+)$/, (c, t) => taskPage(c, t)],
  [/^#\/clusters\/([^/]+)\/services\/([^/]+)$/, (c, s) => servicePage(c, s)],
  [/^#\/clusters\/([^/]+)(?:\/(services|tasks|instances|events))?$/, (c, tab) => clusterPage(c, tab || 'services')],
  [/^#\/task-definitions\/new$/, () => taskDefinitionForm()],
  [/^#\/task-definitions\/([^/]+)\/(\d+)\/new$/, (f, r) => taskDefinitionForm(`${f}:${r}`)],
  [/^#\/task-definitions\/([^/]+)\/(\d+)$/, (f, r) => revisionPage(f, r)],
  [/^#\/task-definitions\/([^/]+)$/, (f) => familyPage(f)],
  [/^#\/task-definitions$/, () => familiesPage()],
  [/^/, () => clustersPage()],
];

async function route() {
  timers.forEach(clearInterval);
  timers = [];
  const v = ++view;
  if (!me) return;
  const hash = location.hash || '#/clusters';
  for (const a of document.querySelectorAll('#nav a')) {
    if (hash.startsWith(a.getAttribute('href'))) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  for (const [re, page] of ROUTES) {
    const m = hash.match(re);
    if (m) {
      try { await page(...m.slice(1).map((x) => (x === undefined ? x : decodeURIComponent(x)))); } catch (e) { show(v, 'Error', h('h1', {}, 'Something went wrong'), alertBox(e)); }
      return;
    }
  }
}

// Drawn again as a new view, so the old view's timers stop instead of piling up.
const redraw = (v) => (v === view ? route() : undefined);

const go = (hash) => { if (location.hash === hash) route(); else location.hash = hash; };

// ---- clusters ----------------------------------------------------------------

async function clustersPage(v = view) {
  const arns = await all('ecs', 'ListClusters', {}, 'clusterArns');
  let clusters = [];
  for (let i = 0; i < arns.length; i += 100) {
    clusters = clusters.concat((await call('ecs', 'DescribeClusters', { clusters: arns.slice(i, i + 100) })).clusters || []);
  }
  show(v, 'Clusters', h('div', { class: 'bar' }, h('h1', { class: 'grow' }, `Clusters (${clusters.length})`),
    h('a', { class: 'button primary', href: '#/clusters/new' }, 'Create cluster')),
  table(['Cluster', 'Status', 'Services', 'Tasks', 'Container instances', 'Capacity providers'],
    clusters.map((c) => [h('a', { href: `#/clusters/${encodeURIComponent(c.clusterName)}` }, c.clusterName), statusText(c.status),
      String(c.activeServicesCount), `${c.runningTasksCount} running, ${c.pendingTasksCount} pending`,
      String(c.registeredContainerInstancesCount), (c.capacityProviders || []).join(', ') || 'No default found'])));
}

/** The VPC chosen for a cluster's tasks: a preference of this browser, as the AWS console keeps its own. */
const vpcKey = (cluster) => `berth.vpc.${me.account}.${me.region}.${cluster}`;
function rememberVpc(cluster, vpcId) {
  try { localStorage.setItem(vpcKey(cluster), vpcId); } catch (e) { /* storage off: the default VPC it is */ }
}

async function defaultVpc(cluster) {
  const vpcs = list((await call('ec2', 'DescribeVpcs', {})).vpcSet);
  let remembered = null;
  try { remembered = cluster ? localStorage.getItem(vpcKey(cluster)) : null; } catch (e) { remembered = null; }
  const chosen = vpcs.find((v) => v.vpcId === remembered) || vpcs.find((v) => v.isDefault === 'true') || vpcs[0];
  return { vpcs, chosen };
}

async function createClusterPage(v = view) {
  const name = h('input', { type: 'text', name: 'clusterName', required: true });
  const fargate = h('input', { type: 'checkbox', id: nextId('c'), checked: true });
  const ec2 = h('input', { type: 'checkbox', id: nextId('c') });
  const { vpcs, chosen } = await defaultVpc();
  const vpc = select(vpcs.map((v) => [v.vpcId, `${v.vpcId}${v.isDefault === 'true' ? ' (default)' : ''} ${v.cidrBlock}`]), chosen && chosen.vpcId);
  const out = h('div');
  const form = h('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      out.replaceChildren();
      fieldError(name, '');
      const input = { clusterName: name.value };
      if (fargate.checked) {
        input.capacityProviders = ['FARGATE', 'FARGATE_SPOT'];
        input.defaultCapacityProviderStrategy = [{ capacityProvider: 'FARGATE', weight: 1 }];
      }
      try {
        await call('ecs', 'CreateCluster', input);
        rememberVpc(name.value, vpc.value);
        go(`#/clusters/${encodeURIComponent(name.value)}`);
      } catch (err) {
        if (/name/i.test(err.message)) fieldError(name, err.message); else out.replaceChildren(alertBox(err));
      }
    },
  },
  h('div', { class: 'panel' }, h('h2', {}, 'Cluster configuration'),
    field('Cluster name', name, 'Up to 255 letters, numbers, hyphens and underscores.')),
  h('div', { class: 'panel' }, h('fieldset', {}, h('legend', {}, 'Infrastructure'),
    h('div', {}, fargate, h('label', { for: fargate.id }, ' AWS Fargate (serverless): tasks run on the shared fleet')),
    h('div', {}, ec2, h('label', { for: ec2.id }, ' Amazon EC2 instances: hosts you run berth agent on join this cluster'))),
  field('VPC for the cluster\'s tasks', vpc, 'Run new task preselects this VPC and its default subnets.')),
  out, h('div', { class: 'bar' }, h('a', { class: 'button', href: '#/clusters' }, 'Cancel'), h('button', { class: 'primary', type: 'submit' }, 'Create')));
  show(v, 'Create cluster', h('h1', {}, 'Create cluster'), form);
}

async function clusterPage(name, tab, v = view) {
  const described = await call('ecs', 'DescribeClusters', { clusters: [name], include: ['STATISTICS', 'TAGS'] });
  const c = (described.clusters || [])[0];
  if (!c) { show(v, 'Cluster', h('h1', {}, name), alertBox({ code: 'ClusterNotFoundException', message: 'Cluster not found.' })); return; }
  const base = `#/clusters/${encodeURIComponent(name)}`;
  const tabs = h('div', { class: 'tabs', role: 'navigation', 'aria-label': 'Cluster' },
    [['services', 'Services'], ['tasks', 'Tasks'], ['instances', 'Infrastructure'], ['events', 'Events']].map(([t, label]) =>
      h('a', { href: `${base}/${t}`, 'aria-current': t === tab ? 'page' : null }, label)));
  const body = h('div', {}, h('p', {}, 'Loading…'));
  show(v, `Cluster ${name}`, h('div', { class: 'bar' }, h('h1', { class: 'grow' }, name),
    h('a', { class: 'button primary', href: `${base}/run-task` }, 'Run new task'), deleteCluster(name)),
  h('div', { class: 'panel' }, facts([['Status', statusText(c.status)], ['ARN', c.clusterArn],
    ['Services', String(c.activeServicesCount)], ['Tasks', `${c.runningTasksCount} running, ${c.pendingTasksCount} pending`],
    ['Container instances', String(c.registeredContainerInstancesCount)],
    ['Capacity providers', (c.capacityProviders || []).join(', ')],
    ['Tags', (c.tags || []).map((t) => `${t.key}=${t.value}`).join(', ')]])), tabs, body);
  const draw = { services: servicesTab, tasks: tasksTab, instances: instancesTab, events: eventsTab }[tab];
  await draw(name, body);
}

function deleteCluster(name) {
  const typed = h('input', { type: 'text', autocomplete: 'off' });
  const confirm = h('button', { class: 'danger', type: 'submit', disabled: true }, 'Delete');
  typed.addEventListener('input', () => { confirm.disabled = typed.value !== name; });
  const out = h('div');
  return h('details', { class: 'menu' }, h('summary', {}, 'Delete cluster'),
    h('div', {}, h('form', {
      onsubmit: async (e) => {
        e.preventDefault();
        try { await call('ecs', 'DeleteCluster', { cluster: name }); go('#/clusters'); } catch (err) { out.replaceChildren(alertBox(err)); }
      },
    }, field(`Type ${name} to confirm`, typed), confirm, out)));
}

async function servicesTab(cluster, body) {
  const arns = await all('ecs', 'ListServices', { cluster }, 'serviceArns');
  let services = [];
  for (let i = 0; i < arns.length; i += 10) {
    services = services.concat((await call('ecs', 'DescribeServices', { cluster, services: arns.slice(i, i + 10) })).services || []);
  }
  body.replaceChildren(table(['Service', 'Status', 'Tasks (desired / running / pending)', 'Task definition', 'Launch type'],
    services.map((s) => [h('a', { href: `#/clusters/${encodeURIComponent(cluster)}/services/${encodeURIComponent(s.serviceName)}` }, s.serviceName),
      statusText(s.status), `${s.desiredCount} / ${s.runningCount} / ${s.pendingCount}`, familyRev(s.taskDefinition), s.launchType || 'capacity provider'])));
}

async function tasksTab(cluster, body) {
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const status = select([['RUNNING', 'Running'], ['STOPPED', 'Stopped']], params.get('status') || 'RUNNING');
  const family = h('input', { type: 'text', value: params.get('family') || '' });
  const launch = select([['', 'Any'], ['FARGATE', 'FARGATE'], ['EC2', 'EC2']], params.get('launchType') || '');
  const rows = h('div', {}, h('p', {}, 'Loading…'));
  const draw = async () => {
    const input = { cluster, desiredStatus: status.value };
    if (family.value) input.family = family.value;
    if (launch.value) input.launchType = launch.value;
    const tasks = await describeTasks(cluster, await all('ecs', 'ListTasks', input, 'taskArns'));
    tasks.sort((a, b) => (b.createdAt || 0) - (a.createdAt || 0));
    rows.replaceChildren(table(['Task', 'Last status', 'Desired status', 'Task definition', 'Launch type', 'Started', 'Group'],
      tasks.map((t) => [h('a', { href: `#/clusters/${encodeURIComponent(cluster)}/tasks/${lastPart(t.taskArn)}` }, lastPart(t.taskArn)),
        statusText(t.lastStatus), t.desiredStatus, familyRev(t.taskDefinitionArn), t.launchType || '-', when(t.startedAt), t.group || '-']),
    `${tasks.length} tasks`));
  };
  body.replaceChildren(h('form', { class: 'bar', onsubmit: (e) => { e.preventDefault(); draw(); } },
    field('Desired status', status), field('Family', family), field('Launch type', launch), h('button', { type: 'submit' }, 'Filter')), rows);
  await draw();
}

async function instancesTab(cluster, body) {
  const arns = await all('ecs', 'ListContainerInstances', { cluster }, 'containerInstanceArns');
  let instances = [];
  for (let i = 0; i < arns.length; i += 100) {
    instances = instances.concat((await call('ecs', 'DescribeContainerInstances', { cluster, containerInstances: arns.slice(i, i + 100) })).containerInstances || []);
  }
  const resource = (rs, n) => ((rs || []).find((r) => r.name === n) || {}).integerValue;
  const out = h('div');
  const flip = (ci, status) => h('button', {
    type: 'button',
    onclick: async () => {
      try { await call('ecs', 'UpdateContainerInstancesState', { cluster, containerInstances: [ci.containerInstanceArn], status }); await instancesTab(cluster, body); } catch (e) { out.replaceChildren(alertBox(e)); }
    },
  }, status === 'DRAINING' ? 'Drain' : 'Activate');
  body.replaceChildren(out, table(['Container instance', 'Status', 'Agent connected', 'Running tasks', 'CPU available / registered', 'Memory available / registered', 'Actions'],
    instances.map((ci) => [lastPart(ci.containerInstanceArn), statusText(ci.status), ci.agentConnected ? 'Yes' : 'No', String(ci.runningTasksCount),
      `${resource(ci.remainingResources, 'CPU')} / ${resource(ci.registeredResources, 'CPU')}`,
      `${resource(ci.remainingResources, 'MEMORY')} / ${resource(ci.registeredResources, 'MEMORY')} MiB`,
      flip(ci, ci.status === 'DRAINING' ? 'ACTIVE' : 'DRAINING')])));
}

async function eventsTab(cluster, body) {
  const arns = await all('ecs', 'ListServices', { cluster }, 'serviceArns');
  let events = [];
  for (let i = 0; i < arns.length; i += 10) {
    for (const s of (await call('ecs', 'DescribeServices', { cluster, services: arns.slice(i, i + 10) })).services || []) {
      events = events.concat((s.events || []).map((e) => Object.assign({ service: s.serviceName }, e)));
    }
  }
  events.sort((a, b) => b.createdAt - a.createdAt);
  body.replaceChildren(table(['Time', 'Service', 'Message'], events.slice(0, 200).map((e) => [when(e.createdAt), e.service, e.message])));
}

// ---- task definitions -------------------------------------------------------

async function familiesPage(v = view) {
  const families = await all('ecs', 'ListTaskDefinitionFamilies', { status: 'ACTIVE' }, 'families');
  show(v, 'Task definitions', h('div', { class: 'bar' }, h('h1', { class: 'grow' }, `Task definitions (${families.length})`),
    h('a', { class: 'button primary', href: '#/task-definitions/new' }, 'Create new task definition')),
  table(['Task definition family'], families.map((f) => [h('a', { href: `#/task-definitions/${encodeURIComponent(f)}` }, f)])));
}

async function familyPage(family, v = view) {
  const revisions = [];
  for (const status of ['ACTIVE', 'INACTIVE']) {
    const arns = await all('ecs', 'ListTaskDefinitions', { familyPrefix: family, status, sort: 'DESC' }, 'taskDefinitionArns');
    for (const arn of arns) {
      const [f, r] = familyRev(arn).split(':');
      if (f === family) revisions.push({ arn, revision: Number(r), status });
    }
  }
  revisions.sort((a, b) => b.revision - a.revision);
  const out = h('div');
  const act = (op, input) => async () => {
    out.replaceChildren();
    try { await call('ecs', op, input); await familyPage(family, v); } catch (e) { out.replaceChildren(alertBox(e)); }
  };
  const actions = (r) => h('details', { class: 'menu' }, h('summary', { 'aria-label': `Actions for revision ${r.revision}` }, 'Actions'),
    h('div', {}, h('a', { class: 'button', href: `#/task-definitions/${encodeURIComponent(family)}/${r.revision}/new` }, 'Create new revision'),
      r.status === 'ACTIVE' ? h('button', { type: 'button', onclick: act('DeregisterTaskDefinition', { taskDefinition: `${family}:${r.revision}` }) }, 'Deregister')
        : h('button', { type: 'button', class: 'danger', onclick: act('DeleteTaskDefinitions', { taskDefinitions: [`${family}:${r.revision}`] }) }, 'Delete')));
  show(v, `Task definition ${family}`, h('div', { class: 'bar' }, h('h1', { class: 'grow' }, family),
    revisions.length ? h('a', { class: 'button primary', href: `#/task-definitions/${encodeURIComponent(family)}/${revisions[0].revision}/new` }, 'Create new revision') : null),
  out, table(['Revision', 'Status', 'Actions'], revisions.map((r) => [
    h('a', { href: `#/task-definitions/${encodeURIComponent(family)}/${r.revision}` }, `${family}:${r.revision}`), statusText(r.status), actions(r)]),
  `${revisions.length} revisions`));
}

async function revisionPage(family, revision, v = view) {
  const { taskDefinition: td } = await call('ecs', 'DescribeTaskDefinition', { taskDefinition: `${family}:${revision}` });
  show(v, `${family}:${revision}`, h('div', { class: 'bar' }, h('h1', { class: 'grow' }, `${family}:${revision}`),
    h('a', { class: 'button', href: `#/task-definitions/${encodeURIComponent(family)}/${revision}/new` }, 'Create new revision')),
  h('div', { class: 'panel' }, facts([['Status', statusText(td.status)], ['ARN', td.taskDefinitionArn],
    ['Launch types', (td.requiresCompatibilities || []).join(', ')], ['Network mode', td.networkMode],
    ['CPU', td.cpu], ['Memory', td.memory], ['Task role', td.taskRoleArn], ['Execution role', td.executionRoleArn],
    ['Containers', (td.containerDefinitions || []).map((c) => `${c.name} (${c.image})`).join(', ')]])),
  h('h2', {}, 'JSON'), h('pre', { tabindex: 0, 'aria-label': 'Task definition JSON' }, JSON.stringify(td, null, 2)));
}

const CPU = [['256', '.25 vCPU'], ['512', '.5 vCPU'], ['1024', '1 vCPU'], ['2048', '2 vCPU'], ['4096', '4 vCPU']];
const MEMORY = [['512', '0.5 GB'], ['1024', '1 GB'], ['2048', '2 GB'], ['3072', '3 GB'], ['4096', '4 GB'], ['8192', '8 GB']];
const NEW_EXEC_ROLE = 'new:ecsTaskExecutionRole';
const TRUST = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'ecs-tasks.amazonaws.com' }, Action: 'sts:AssumeRole' }] };

/** Rows of inputs that can be added to and removed. */
function rowList(label, makeRow, initial) {
  const rows = h('div', { class: 'rows' });
  const add = (v) => {
    const row = makeRow(v || {});
    const remove = h('button', { type: 'button', onclick: () => row.el.remove() }, 'Remove');
    row.el.append(remove);
    row.el.read = row.read;
    rows.append(row.el);
  };
  (initial || []).forEach(add);
  return {
    el: h('fieldset', {}, h('legend', {}, label), rows, h('button', { type: 'button', onclick: () => add() }, `Add ${label.toLowerCase().replace(/s$/, '')}`)),
    read: () => Array.from(rows.children).map((r) => r.read()).filter(Boolean),
  };
}

function portRow(p) {
  const port = h('input', { type: 'number', min: 1, max: 65535, value: p.containerPort || '' });
  const proto = select([['tcp', 'TCP'], ['udp', 'UDP']], p.protocol || 'tcp');
  const appProto = select([['', 'None'], ['http', 'HTTP'], ['http2', 'HTTP2'], ['grpc', 'gRPC']], p.appProtocol || '');
  return {
    el: h('div', {}, field('Container port', port), field('Protocol', proto), field('App protocol', appProto)),
    read: () => (port.value ? Object.assign({ containerPort: Number(port.value), protocol: proto.value }, appProto.value ? { appProtocol: appProto.value } : {}) : null),
  };
}

function envRow(e) {
  const key = h('input', { type: 'text', value: e.name || '' });
  const value = h('input', { type: 'text', value: e.value || '' });
  return { el: h('div', {}, field('Key', key), field('Value', value)), read: () => (key.value ? { name: key.value, value: value.value } : null) };
}

const splitCommand = (s) => (s.trim() ? s.split(',').map((x) => x.trim()) : null);

async function roleOptions() {
  try {
    const roles = list(((await call('iam', 'ListRoles', {})).ListRolesResult || {}).Roles);
    return roles.map((r) => [r.Arn, r.RoleName]);
  } catch (e) {
    return [];
  }
}

async function taskDefinitionForm(from, v = view) {
  const base = from ? (await call('ecs', 'DescribeTaskDefinition', { taskDefinition: from })).taskDefinition : null;
  const c0 = base ? base.containerDefinitions[0] : {};
  const roles = await roleOptions();
  const family = h('input', { type: 'text', value: base ? base.family : '', readonly: base ? true : null });
  const fargate = h('input', { type: 'checkbox', id: nextId('c'), checked: base ? (base.requiresCompatibilities || []).includes('FARGATE') : true });
  const platform = select([['LINUX/X86_64', 'Linux/X86_64'], ['LINUX/ARM64', 'Linux/ARM64']],
    base && base.runtimePlatform ? `${base.runtimePlatform.operatingSystemFamily}/${base.runtimePlatform.cpuArchitecture}` : 'LINUX/X86_64');
  const network = select([['awsvpc', 'awsvpc'], ['bridge', 'bridge'], ['host', 'host']], base ? base.networkMode || 'bridge' : 'awsvpc');
  const cpu = select(CPU, base ? base.cpu : '512');
  const memory = select(MEMORY, base ? base.memory : '1024');
  const taskRole = select([['', 'None'], ...roles], base ? base.taskRoleArn || '' : '');
  const hasExecRole = roles.some(([, n]) => n === 'ecsTaskExecutionRole');
  const execRole = select([['', 'None'], ...roles, ...(hasExecRole ? [] : [[NEW_EXEC_ROLE, 'Create new role (ecsTaskExecutionRole)']])],
    base ? base.executionRoleArn || '' : '');
  const name = h('input', { type: 'text', value: c0.name || '' });
  const image = h('input', { type: 'text', value: c0.image || '' });
  const essential = select([['true', 'Yes'], ['false', 'No']], c0.essential === false ? 'false' : 'true');
  const command = h('input', { type: 'text', value: (c0.command || []).join(', ') });
  const ports = rowList('Port mappings', portRow, c0.portMappings || [{}]);
  const env = rowList('Environment variables', envRow, c0.environment || []);
  const logs = h('input', { type: 'checkbox', id: nextId('c'), checked: base ? !!c0.logConfiguration : true });
  const useLogs = () => {
    if (logs.checked && !execRole.value) execRole.value = hasExecRole ? roles.find(([, n]) => n === 'ecsTaskExecutionRole')[0] : NEW_EXEC_ROLE;
  };
  logs.addEventListener('change', useLogs);
  if (!base) useLogs();
  const json = h('textarea', { spellcheck: 'false' });
  const top = h('div');
  const fields = { family, image, name, cpu, memory, executionRoleArn: execRole, taskRoleArn: taskRole, networkMode: network, portMappings: ports.el, environment: env.el };

  const fromForm = () => {
    const [os, arch] = platform.value.split('/');
    const container = { name: name.value, image: image.value, essential: essential.value === 'true', portMappings: ports.read(), environment: env.read() };
    if (splitCommand(command.value)) container.command = splitCommand(command.value);
    if (logs.checked) {
      container.logConfiguration = {
        logDriver: 'awslogs',
        options: { 'awslogs-group': `/ecs/${family.value}`, 'awslogs-region': me.region, 'awslogs-stream-prefix': 'ecs', 'awslogs-create-group': 'true', mode: 'non-blocking', 'max-buffer-size': '25m' },
      };
    }
    const td = {
      family: family.value, containerDefinitions: [container], networkMode: fargate.checked ? 'awsvpc' : network.value,
      cpu: cpu.value, memory: memory.value, runtimePlatform: { operatingSystemFamily: os, cpuArchitecture: arch },
      requiresCompatibilities: fargate.checked ? ['FARGATE'] : ['EC2'],
    };
    if (taskRole.value) td.taskRoleArn = taskRole.value;
    if (execRole.value) td.executionRoleArn = execRole.value;
    return td;
  };
  const formView = h('form', { 'aria-label': 'Task definition form', onsubmit: (e) => { e.preventDefault(); review(fromForm()); } },
    h('div', { class: 'panel' }, h('h2', {}, 'Task definition configuration'), field('Task definition family', family, 'Up to 255 letters, numbers, hyphens and underscores.')),
    h('div', { class: 'panel' }, h('h2', {}, 'Infrastructure requirements'),
      h('fieldset', {}, h('legend', {}, 'Launch type'), fargate, h('label', { for: fargate.id }, ' AWS Fargate')),
      field('Operating system/Architecture', platform), field('Network mode', network, 'Fargate tasks use awsvpc.'),
      h('fieldset', {}, h('legend', {}, 'Task size'), field('CPU', cpu), field('Memory', memory)),
      field('Task role', taskRole, 'The role the task\'s containers get credentials for.'),
      field('Task execution role', execRole, 'The role berth pulls private images, fetches secrets and sends logs as.')),
    h('div', { class: 'panel' }, h('h2', {}, 'Container - 1'), field('Container name', name), field('Image URI', image),
      field('Essential container', essential), ports.el, env.el,
      field('Command', command, 'Comma-separated, as in: sh, -c, echo hello'),
      h('fieldset', {}, h('legend', {}, 'Logging'), logs, h('label', { for: logs.id }, ' Use log collection (awslogs to /ecs/FAMILY)'))),
    h('div', { class: 'bar' }, h('a', { class: 'button', href: '#/task-definitions' }, 'Cancel'), h('button', { class: 'primary', type: 'submit' }, 'Next')));
  const jsonView = h('form', {
    'aria-label': 'Task definition JSON', hidden: true,
    onsubmit: (e) => {
      e.preventDefault();
      try { review(JSON.parse(json.value)); } catch (err) { top.replaceChildren(alertBox({ code: 'Invalid JSON', message: err.message })); }
    },
  }, field('Task definition JSON', json), h('button', { class: 'primary', type: 'submit' }, 'Next'));
  const mode = (toJson) => () => {
    if (toJson) json.value = JSON.stringify(fromForm(), null, 2);
    formView.hidden = toJson;
    jsonView.hidden = !toJson;
  };
  const edit = () => show(v, 'Create task definition', h('h1', {}, base ? `Create new revision of ${base.family}` : 'Create new task definition'),
    h('div', { class: 'bar' }, h('button', { type: 'button', onclick: mode(false) }, 'Form'), h('button', { type: 'button', onclick: mode(true) }, 'JSON editor')),
    top, formView, jsonView);

  const review = (td) => {
    const out = h('div');
    show(v, 'Review task definition', h('h1', {}, 'Review and create'),
      h('div', { class: 'panel' }, facts([['Family', td.family], ['Launch type', (td.requiresCompatibilities || []).join(', ')],
        ['Task size', `${td.cpu || '-'} CPU units, ${td.memory || '-'} MiB`], ['Network mode', td.networkMode],
        ['Containers', (td.containerDefinitions || []).map((c) => `${c.name} (${c.image})`).join(', ')],
        ['Log collection', (td.containerDefinitions || []).some((c) => c.logConfiguration) ? 'On' : 'Off'],
        ['Execution role', td.executionRoleArn === NEW_EXEC_ROLE ? 'ecsTaskExecutionRole (created now)' : td.executionRoleArn]])),
      h('pre', { tabindex: 0, 'aria-label': 'Task definition JSON' }, JSON.stringify(td, null, 2)), out,
      h('div', { class: 'bar' }, h('button', { type: 'button', onclick: edit }, 'Back'),
        h('button', { class: 'primary', type: 'button', onclick: () => create(td, out) }, 'Create')));
  };

  const create = async (td, out) => {
    try {
      if (td.executionRoleArn === NEW_EXEC_ROLE) td.executionRoleArn = await createExecutionRole();
      const r = await call('ecs', 'RegisterTaskDefinition', td);
      const d = r.taskDefinition;
      go(`#/task-definitions/${encodeURIComponent(d.family)}/${d.revision}`);
    } catch (err) {
      edit();
      Object.values(fields).forEach((f) => fieldError(f, ''));
      const target = fieldFor(err.message, fields);
      if (target) { fieldError(target, `${err.code}: ${err.message}`); target.focus(); } else top.replaceChildren(alertBox(err));
    }
  };
  edit();
}

/** The form control an ECS validation message is about, by the member it names. */
function fieldFor(message, fields) {
  const m = message.toLowerCase();
  const order = [['executionrolearn', 'executionRoleArn'], ['taskrolearn', 'taskRoleArn'], ['execution role', 'executionRoleArn'],
    ['family', 'family'], ['image', 'image'], ['port', 'portMappings'], ['environment', 'environment'], ['networkmode', 'networkMode'],
    ['network mode', 'networkMode'], ['memory', 'memory'], ['cpu', 'cpu'], ['container name', 'name'], ['name', 'name']];
  const hit = order.find(([word]) => m.includes(word));
  return hit ? fields[hit[1]] : null;
}

async function createExecutionRole() {
  const q = { RoleName: 'ecsTaskExecutionRole', AssumeRolePolicyDocument: JSON.stringify(TRUST), Description: 'Made by the console for task execution' };
  const made = await call('iam', 'CreateRole', q);
  await call('iam', 'AttachRolePolicy', { RoleName: 'ecsTaskExecutionRole', PolicyArn: 'arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy' });
  // awslogs-create-group needs logs:CreateLogGroup, which the managed policy leaves out.
  await call('iam', 'PutRolePolicy', {
    RoleName: 'ecsTaskExecutionRole', PolicyName: 'LogGroups',
    PolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'logs:CreateLogGroup', Resource: '*' }] }),
  });
  return made.CreateRoleResult.Role.Arn;
}

// ---- run task / create service ----------------------------------------------

const RULE_TYPES = { HTTP: 80, HTTPS: 443, SSH: 22, 'Custom TCP': null };

function ruleRow(myIp) {
  return () => {
    const type = select(Object.keys(RULE_TYPES).map((t) => [t, t]), 'HTTP');
    const port = h('input', { type: 'number', min: 0, max: 65535, value: 80, readonly: true });
    const source = select([['anywhere', 'Anywhere'], ['myip', 'My IP'], ['custom', 'Custom']], 'anywhere');
    const cidr = h('input', { type: 'text', value: '0.0.0.0/0', readonly: true });
    type.addEventListener('change', () => {
      const p = RULE_TYPES[type.value];
      port.readOnly = p !== null;
      if (p !== null) port.value = p;
    });
    source.addEventListener('change', () => {
      cidr.readOnly = source.value !== 'custom';
      if (source.value === 'anywhere') cidr.value = '0.0.0.0/0';
      if (source.value === 'myip') cidr.value = `${myIp}/32`;
    });
    return {
      el: h('div', {}, field('Type', type), field('Port range', port), field('Source', source), field('CIDR', cidr)),
      read: () => ({ port: Number(port.value), cidr: cidr.value }),
    };
  };
}

async function runTaskPage(cluster, v = view) {
  const families = await all('ecs', 'ListTaskDefinitionFamilies', { status: 'ACTIVE' }, 'families');
  const { vpcs, chosen } = await defaultVpc(cluster);
  const launchMode = select([['launchType', 'Launch type'], ['strategy', 'Capacity provider strategy']], 'launchType');
  const launchType = select([['FARGATE', 'FARGATE'], ['EC2', 'EC2']], 'FARGATE');
  const c = ((await call('ecs', 'DescribeClusters', { clusters: [cluster] })).clusters || [])[0] || {};
  const providers = (c.capacityProviders || []).length ? c.capacityProviders : ['FARGATE', 'FARGATE_SPOT'];
  const provider = select(providers.map((p) => [p, p]), providers[0]);
  const appType = select([['task', 'Task'], ['service', 'Service']], 'task');
  const family = select(families.map((f) => [f, f]), families[0]);
  const revision = select([['', 'LATEST']], '');
  const count = h('input', { type: 'number', min: 1, max: 10, value: 1 });
  const serviceName = h('input', { type: 'text' });
  const desired = h('input', { type: 'number', min: 0, value: 1 });
  const vpc = select(vpcs.map((v) => [v.vpcId, `${v.vpcId}${v.isDefault === 'true' ? ' (default)' : ''}`]), chosen && chosen.vpcId);
  const subnets = h('fieldset', {}, h('legend', {}, 'Subnets'));
  const groups = h('fieldset', {}, h('legend', {}, 'Existing security groups'));
  const sgMode = select([['existing', 'Use an existing security group'], ['new', 'Create a new security group']], 'existing');
  const sgName = h('input', { type: 'text' });
  const sgDesc = h('input', { type: 'text', value: 'Created in the berth console' });
  const rules = rowList('Inbound rules', ruleRow(me.sourceIp || '127.0.0.1'), [{}]);
  const newGroup = h('div', { hidden: true }, field('Security group name', sgName), field('Security group description', sgDesc), rules.el);
  const publicIp = h('input', { type: 'checkbox', id: nextId('c'), checked: true });
  const overrideCommand = h('input', { type: 'text' });
  const overrideEnv = rowList('Environment variable overrides', envRow, []);
  const out = h('div');
  const taskOnly = h('div', {}, field('Desired tasks', count));
  const serviceOnly = h('div', { hidden: true }, field('Service name', serviceName), field('Desired tasks', desired));

  const fillRevisions = async () => {
    const arns = await all('ecs', 'ListTaskDefinitions', { familyPrefix: family.value, status: 'ACTIVE', sort: 'DESC' }, 'taskDefinitionArns');
    const revs = arns.map(familyRev).filter((fr) => fr.split(':')[0] === family.value);
    revision.replaceChildren(h('option', { value: '' }, 'LATEST'), ...revs.map((r) => h('option', { value: r }, r.split(':')[1])));
  };
  const fillNetwork = async () => {
    const subs = list((await call('ec2', 'DescribeSubnets', filters([['vpc-id', [vpc.value]]]))).subnetSet);
    subnets.replaceChildren(h('legend', {}, 'Subnets'), ...subs.map((s) => {
      const box = h('input', { type: 'checkbox', id: nextId('s'), value: s.subnetId, checked: s.defaultForAz === 'true' });
      return h('div', {}, box, h('label', { for: box.id }, ` ${s.subnetId} ${s.availabilityZone} ${s.cidrBlock}`));
    }));
    const sgs = list((await call('ec2', 'DescribeSecurityGroups', filters([['vpc-id', [vpc.value]]]))).securityGroupInfo);
    groups.replaceChildren(h('legend', {}, 'Existing security groups'), ...sgs.map((g) => {
      const box = h('input', { type: 'checkbox', id: nextId('g'), value: g.groupId, checked: g.groupName === 'default' });
      return h('div', {}, box, h('label', { for: box.id }, ` ${g.groupId} ${g.groupName}`));
    }));
  };
  family.addEventListener('change', fillRevisions);
  vpc.addEventListener('change', fillNetwork);
  appType.addEventListener('change', () => { taskOnly.hidden = appType.value !== 'task'; serviceOnly.hidden = appType.value === 'task'; });
  sgMode.addEventListener('change', () => { newGroup.hidden = sgMode.value !== 'new'; groups.hidden = sgMode.value === 'new'; });
  const launchField = field('Launch type', launchType);
  const providerField = field('Capacity provider', provider);
  providerField.hidden = true;
  launchMode.addEventListener('change', () => { launchField.hidden = launchMode.value !== 'launchType'; providerField.hidden = launchMode.value === 'launchType'; });

  const checked = (fs) => Array.from(fs.querySelectorAll('input[type=checkbox]:checked')).map((b) => b.value);
  const securityGroup = async () => {
    if (sgMode.value === 'existing') return checked(groups);
    const made = await call('ec2', 'CreateSecurityGroup', { GroupName: sgName.value, GroupDescription: sgDesc.value, VpcId: vpc.value });
    const q = { GroupId: made.groupId };
    rules.read().forEach((r, i) => {
      const p = `IpPermissions.${i + 1}`;
      Object.assign(q, { [`${p}.IpProtocol`]: 'tcp', [`${p}.FromPort`]: r.port, [`${p}.ToPort`]: r.port, [`${p}.IpRanges.1.CidrIp`]: r.cidr });
    });
    if (rules.read().length) await call('ec2', 'AuthorizeSecurityGroupIngress', q);
    return [made.groupId];
  };
  const submit = async (e) => {
    e.preventDefault();
    out.replaceChildren();
    try {
      const input = { cluster, taskDefinition: revision.value || family.value };
      if (launchMode.value === 'launchType') input.launchType = launchType.value;
      else input.capacityProviderStrategy = [{ capacityProvider: provider.value, weight: 1 }];
      const { taskDefinition: td } = await call('ecs', 'DescribeTaskDefinition', { taskDefinition: input.taskDefinition });
      if (td.networkMode === 'awsvpc') {
        input.networkConfiguration = { awsvpcConfiguration: { subnets: checked(subnets), securityGroups: await securityGroup(), assignPublicIp: publicIp.checked ? 'ENABLED' : 'DISABLED' } };
      }
      if (appType.value === 'service') {
        input.serviceName = serviceName.value;
        input.desiredCount = Number(desired.value);
        const r = await call('ecs', 'CreateService', input);
        go(`#/clusters/${encodeURIComponent(cluster)}/services/${encodeURIComponent(r.service.serviceName)}`);
        return;
      }
      input.count = Number(count.value);
      const envs = overrideEnv.read();
      if (overrideCommand.value || envs.length) {
        const o = { name: td.containerDefinitions[0].name };
        if (splitCommand(overrideCommand.value)) o.command = splitCommand(overrideCommand.value);
        if (envs.length) o.environment = envs;
        input.overrides = { containerOverrides: [o] };
      }
      const r = await call('ecs', 'RunTask', input);
      if ((r.failures || []).length && !(r.tasks || []).length) {
        out.replaceChildren(alertBox({ code: 'Failures', message: r.failures.map((f) => `${f.arn || ''} ${f.reason}${f.detail ? ': ' + f.detail : ''}`).join('; ') }));
        return;
      }
      const tasks = r.tasks || [];
      go(tasks.length === 1 ? `#/clusters/${encodeURIComponent(cluster)}/tasks/${lastPart(tasks[0].taskArn)}` : `#/clusters/${encodeURIComponent(cluster)}/tasks`);
    } catch (err) { out.replaceChildren(alertBox(err)); }
  };
  show(v, 'Run task', h('h1', {}, `Run new task in ${cluster}`), h('form', { onsubmit: submit },
    h('div', { class: 'panel' }, h('h2', {}, 'Compute configuration'), field('Compute options', launchMode),
      launchField, providerField),
    h('div', { class: 'panel' }, h('h2', {}, 'Deployment configuration'), field('Application type', appType),
      field('Family', family), field('Revision', revision), taskOnly, serviceOnly),
    h('div', { class: 'panel' }, h('h2', {}, 'Networking'), field('VPC', vpc), subnets, field('Security group', sgMode), groups, newGroup,
      h('div', { class: 'field' }, publicIp, h('label', { for: publicIp.id }, ' Public IP'))),
    h('details', { class: 'panel' }, h('summary', {}, 'Task overrides'), field('Command override', overrideCommand, 'Comma-separated'), overrideEnv.el),
    out, h('div', { class: 'bar' }, h('a', { class: 'button', href: `#/clusters/${encodeURIComponent(cluster)}` }, 'Cancel'),
      h('button', { class: 'primary', type: 'submit' }, 'Create'))));
  if (families.length) await fillRevisions();
  await fillNetwork();
}

// ---- a task ------------------------------------------------------------------

const detail = (attachment, name) => ((attachment.details || []).find((d) => d.name === name) || {}).value;

async function publicIpOf(eni) {
  if (!eni) return null;
  try {
    const r = await call('ec2', 'DescribeNetworkInterfaces', { 'NetworkInterfaceId.1': eni });
    const n = list(r.networkInterfaceSet)[0];
    return n && n.association ? n.association.publicIp : null;
  } catch (e) {
    return null; // The ENI is gone once the task has stopped.
  }
}

async function taskPage(cluster, id, v = view) {
  const overview = h('div', { class: 'panel' });
  const network = h('div', { class: 'panel' });
  const containers = h('div');
  const logs = h('pre', { 'aria-label': 'Log lines', tabindex: 0 });
  const out = h('div');
  const stop = h('button', {
    type: 'button', class: 'danger',
    onclick: async () => {
      try { await call('ecs', 'StopTask', { cluster, task: id, reason: 'Stopped in the berth console' }); await refresh(); } catch (e) { out.replaceChildren(alertBox(e)); }
    },
  }, 'Stop');
  let eni = null;
  let ip = null;
  const streams = {};
  let done = false;
  const refresh = async () => {
    const t = (await describeTasks(cluster, [id]))[0];
    if (!t) { out.replaceChildren(alertBox({ code: 'Not found', message: `Task ${id} is not in ${cluster}.` })); done = true; return; }
    const a = (t.attachments || []).find((x) => x.type === 'ElasticNetworkInterface');
    if (a && detail(a, 'networkInterfaceId') !== eni) { eni = detail(a, 'networkInterfaceId'); }
    if (eni && !ip && t.lastStatus === 'RUNNING') ip = await publicIpOf(eni);
    stop.disabled = t.desiredStatus === 'STOPPED';
    overview.replaceChildren(facts([['Last status', h('span', { id: 'task-status', class: 'status-' + t.lastStatus }, t.lastStatus)],
      ['Desired status', t.desiredStatus], ['Task definition', familyRev(t.taskDefinitionArn)], ['Launch type', t.launchType],
      ['Capacity provider', t.capacityProviderName], ['CPU / memory', `${t.cpu || '-'} / ${t.memory || '-'}`],
      ['Created', when(t.createdAt)], ['Started', when(t.startedAt)], ['Stopped', when(t.stoppedAt)],
      t.stoppedReason ? ['Stopped reason', t.stoppedReason] : null, ['ARN', t.taskArn]]));
    const privateIp = a ? detail(a, 'privateIPv4Address') : null;
    network.replaceChildren(h('h2', {}, 'Network'), facts([['Network interface', eni], ['Subnet', a ? detail(a, 'subnetId') : null],
      ['Private IP', privateIp],
      ['Public IP', ip ? h('a', { href: `http://${ip}/`, target: '_blank', rel: 'noopener noreferrer', id: 'public-ip' }, ip) : null]]));
    containers.replaceChildren(table(['Container', 'Image', 'Last status', 'Exit code', 'Health', 'Reason'],
      (t.containers || []).map((c) => [c.name, c.image, statusText(c.lastStatus), c.exitCode === undefined ? '-' : String(c.exitCode), c.healthStatus || '-', c.reason || '-'])));
    await followLogs(t);
    done = t.lastStatus === 'STOPPED';
  };
  const followLogs = async (t) => {
    const { taskDefinition: td } = await taskDefinitionOf(t.taskDefinitionArn);
    for (const c of td.containerDefinitions || []) {
      const lc = c.logConfiguration;
      if (!lc || lc.logDriver !== 'awslogs') continue;
      const o = lc.options || {};
      const key = c.name;
      const s = streams[key] || (streams[key] = { group: o['awslogs-group'], stream: `${o['awslogs-stream-prefix']}/${c.name}/${id}`, token: null });
      for (let i = 0; i < 10; i++) {
        let page;
        try {
          page = await call('logs', 'GetLogEvents', Object.assign({ logGroupName: s.group, logStreamName: s.stream, startFromHead: true, limit: 1000 }, s.token ? { nextToken: s.token } : {}));
        } catch (e) { break; }
        (page.events || []).forEach((ev) => logs.append(`${c.name} ${when(ev.timestamp / 1000)} ${ev.message}\n`));
        const moved = page.nextForwardToken !== s.token;
        s.token = page.nextForwardToken;
        if (!moved || !(page.events || []).length) break;
      }
    }
    if (!logs.textContent) logs.textContent = '';
  };
  show(v, `Task ${id}`, h('div', { class: 'bar' }, h('h1', { class: 'grow' }, `Task ${id}`), stop),
    h('p', {}, h('a', { href: `#/clusters/${encodeURIComponent(cluster)}/tasks` }, `Tasks in ${cluster}`)),
    out, overview, network, h('h2', {}, 'Containers'), containers, h('h2', {}, 'Logs'), logs);
  await refresh();
  let busy = false;
  every(v, 2000, async () => {
    if (busy || done) return;
    busy = true;
    try { await refresh(); } catch (e) { out.replaceChildren(alertBox(e)); } finally { busy = false; }
  });
}

const definitions = {};
async function taskDefinitionOf(arn) {
  if (!definitions[arn]) definitions[arn] = await call('ecs', 'DescribeTaskDefinition', { taskDefinition: arn });
  return definitions[arn];
}

// ---- a service -----------------------------------------------------------------

async function servicePage(cluster, name, v = view) {
  const s = ((await call('ecs', 'DescribeServices', { cluster, services: [name] })).services || [])[0];
  if (!s) { show(v, 'Service', h('h1', {}, name), alertBox({ code: 'ServiceNotFoundException', message: 'Service not found.' })); return; }
  const out = h('div');
  const family = familyRev(s.taskDefinition).split(':')[0];
  const arns = await all('ecs', 'ListTaskDefinitions', { familyPrefix: family, status: 'ACTIVE', sort: 'DESC' }, 'taskDefinitionArns');
  const revision = select(arns.map(familyRev).filter((fr) => fr.split(':')[0] === family).map((r) => [r, r]), familyRev(s.taskDefinition));
  const desired = h('input', { type: 'number', min: 0, value: s.desiredCount });
  const dc = s.deploymentConfiguration || {};
  const minPct = h('input', { type: 'number', min: 0, value: dc.minimumHealthyPercent === undefined ? 100 : dc.minimumHealthyPercent });
  const maxPct = h('input', { type: 'number', min: 0, value: dc.maximumPercent === undefined ? 200 : dc.maximumPercent });
  const breaker = dc.deploymentCircuitBreaker || {};
  const cb = h('input', { type: 'checkbox', id: nextId('c'), checked: !!breaker.enable });
  const rollback = h('input', { type: 'checkbox', id: nextId('c'), checked: !!breaker.rollback });
  const update = h('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        await call('ecs', 'UpdateService', {
          cluster, service: name, desiredCount: Number(desired.value), taskDefinition: revision.value,
          deploymentConfiguration: { minimumHealthyPercent: Number(minPct.value), maximumPercent: Number(maxPct.value), deploymentCircuitBreaker: { enable: cb.checked, rollback: rollback.checked } },
        });
        await redraw(v);
      } catch (err) { out.replaceChildren(alertBox(err)); }
    },
  }, h('h2', {}, 'Update service'), field('Desired tasks', desired), field('Task definition revision', revision),
  field('Minimum healthy percent', minPct), field('Maximum percent', maxPct),
  h('div', { class: 'field' }, cb, h('label', { for: cb.id }, ' Use the deployment circuit breaker')),
  h('div', { class: 'field' }, rollback, h('label', { for: rollback.id }, ' Roll back on failures')),
  h('button', { class: 'primary', type: 'submit' }, 'Update'));
  const remove = h('button', {
    type: 'button', class: 'danger',
    onclick: async () => {
      try { await call('ecs', 'DeleteService', { cluster, service: name, force: true }); go(`#/clusters/${encodeURIComponent(cluster)}/services`); } catch (err) { out.replaceChildren(alertBox(err)); }
    },
  }, 'Delete service');
  show(v, `Service ${name}`, h('div', { class: 'bar' }, h('h1', { class: 'grow' }, name), remove),
    h('p', {}, h('a', { href: `#/clusters/${encodeURIComponent(cluster)}/services` }, `Services in ${cluster}`)), out,
    h('div', { class: 'panel' }, facts([['Status', statusText(s.status)], ['Task definition', familyRev(s.taskDefinition)],
      ['Desired / running / pending', `${s.desiredCount} / ${s.runningCount} / ${s.pendingCount}`], ['Launch type', s.launchType], ['ARN', s.serviceArn]])),
    h('h2', {}, 'Deployments'),
    table(['Deployment', 'Status', 'Rollout state', 'Task definition', 'Desired / running / pending', 'Updated'],
      (s.deployments || []).map((d) => [d.id, d.status, `${d.rolloutState || '-'}${d.rolloutStateReason ? ': ' + d.rolloutStateReason : ''}`,
        familyRev(d.taskDefinition), `${d.desiredCount} / ${d.runningCount} / ${d.pendingCount}`, when(d.updatedAt)])),
    h('div', { class: 'panel' }, update),
    h('h2', {}, 'Events'), table(['Time', 'Message'], (s.events || []).slice(0, 100).map((e) => [when(e.createdAt), e.message])));
  every(v, 5000, async () => {
    if (document.activeElement && update.contains(document.activeElement)) return;
    const fresh = ((await call('ecs', 'DescribeServices', { cluster, services: [name] })).services || [])[0];
    if (fresh && (fresh.runningCount !== s.runningCount || (fresh.events || []).length !== (s.events || []).length)) await redraw(v);
  });
}

window.addEventListener('hashchange', route);
window.addEventListener('DOMContentLoaded', start);
