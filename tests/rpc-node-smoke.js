// SPDX-License-Identifier: LGPL-2.1-or-later
// The rpc front-end with @grpc/grpc-js (and @grpc/proto-loader reading
// proto/ as it is): unary calls, a NOT_FOUND status, the health service,
// a server stream.  argv: PROTO_DIR ADDRESS TOKEN (a bearer token).
// Exits 0 when all is well.
'use strict';
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const [protoDir, address, token] = process.argv.slice(2);
const opts = {includeDirs: [protoDir], keepCase: true, longs: String,
              enums: String, defaults: true};
const node = grpc.loadPackageDefinition(
    loader.loadSync('vmhost/v1/node.proto', opts)).vmhost.v1;
const health = grpc.loadPackageDefinition(
    loader.loadSync('grpc/health/v1/health.proto', opts)).grpc.health.v1;

// Every call carries "authorization: Bearer <token>" (metadata).
const creds = grpc.credentials.createInsecure();
const interceptors = [(options, nextCall) =>
  new grpc.InterceptingCall(nextCall(options), {
    start: (metadata, listener, next) => {
      metadata.set('authorization', 'Bearer ' + token);
      next(metadata, listener);
    },
  })];
const client = new node.NodeService(address, creds, {interceptors});
const hc = new health.Health(address, creds, {interceptors});

function call(c, method, req) {
  return new Promise((resolve, reject) =>
    c[method](req, {deadline: Date.now() + 10000},
              (err, res) => err ? reject(err) : resolve(res)));
}

function fail(...msg) {
  console.error('FAIL:', ...msg);
  process.exit(1);
}

(async () => {
  const info = await call(client, 'GetNodeInfo', {});
  if (!info.hostname) fail('GetNodeInfo', info);
  const h = await call(hc, 'Check', {service: ''});
  if (h.status !== 'SERVING') fail('Health.Check', h);

  const events = client.WatchEvents({});
  const first = new Promise((resolve) => events.on('data', resolve));
  events.on('error', (e) => {
    if (e.code !== grpc.status.CANCELLED) fail('WatchEvents', e);
  });
  await new Promise((r) => setTimeout(r, 200));
  const vm = await call(client, 'CreateVM', {
    spec: {name: 'js-1', vcpus: 1, memory: String(1 << 30),
           disks: [{name: 'vda', size: String(1 << 30)}],
           nics: [{name: 'net0'}]}});
  if (vm.name !== 'js-1' || vm.info.state !== 'VM_STATE_RUNNING')
    fail('CreateVM', vm);
  const ev = await first;
  if (ev.vm_id !== vm.id) fail('WatchEvents: first event', ev);
  events.cancel();

  const list = await call(client, 'ListVMs', {});
  if (list.vms.length !== 1 || list.vms[0].id !== vm.id) fail('ListVMs', list);
  try {
    await call(client, 'GetVM', {vm: 'nope'});
    fail('GetVM of no VM answered');
  } catch (e) {
    if (e.code !== grpc.status.NOT_FOUND) fail('GetVM: status', e.code, e);
  }
  await call(client, 'DeleteVM', {vm: vm.id});
  client.close();
  hc.close();
  console.log('ok');
})().catch((e) => fail(e));
