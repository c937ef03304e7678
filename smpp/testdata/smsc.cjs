// Test SMSC for the smpp package, on node-smpp (npm smpp 0.5.1).
// Run: SMSC_NODE_MODULES=interop/node_modules node smsc.cjs
// It listens on 127.0.0.1:$SMSC_PORT (0 = any free port), prints
//   {"event":"listening","port":N}
// and then one JSON line per event (bind, submit_sm, deliver_sm_resp,
// enquire_link, ...), each with its time "ts" (Unix ms, fractional). Behaviour is chosen by environment variables:
//   SMSC_USER / SMSC_PASS     credentials (test / secret); wrong password -> 0x0E
//   SMSC_RECEIPTS             tlv (default): TLVs + text with the hex id;
//                             text-dec: Appendix-B text only, id in decimal; none
//   SMSC_DLR_STAT             receipt stat (DELIVRD)
//   SMSC_FIRST_ID             first message_id, hex (1A2B00); a restarted SMSC
//                             given another never reuses an id
//   SMSC_FAIL_PART            concatenated part number whose receipt says UNDELIV
//   SMSC_THROTTLE             answer the first N submit_sm with SMSC_THROTTLE_STATUS (0x58)
//   SMSC_REJECT_DEST          answer submit_sm to this destination with 0x0B
//   SMSC_SILENT=1             after bind, answer nothing at all
//   SMSC_DROP_AFTER           close the connection after answering the Nth submit_sm
//   SMSC_PROBE=1              after bind, send the ESME enquire_link, an unknown
//                             command 0xAB, a malformed deliver_sm and an MO deliver_sm
//   SMSC_TLS_KEY/SMSC_TLS_CERT  serve TLS with these PEM files
'use strict';
const path = require('path');
const fs = require('fs');
const smpp = require(path.join(process.env.SMSC_NODE_MODULES || '', 'smpp'));

const env = process.env;
const USER = env.SMSC_USER || 'test';
const PASS = env.SMSC_PASS || 'secret';
const RECEIPTS = env.SMSC_RECEIPTS || 'tlv';
const STAT = env.SMSC_DLR_STAT || 'DELIVRD';
const FAIL_PART = Number(env.SMSC_FAIL_PART || 0);
let throttle = Number(env.SMSC_THROTTLE || 0);
const THROTTLE_STATUS = Number(env.SMSC_THROTTLE_STATUS || 0x58);
const REJECT_DEST = env.SMSC_REJECT_DEST || '';
const SILENT = env.SMSC_SILENT === '1';
const DROP_AFTER = Number(env.SMSC_DROP_AFTER || 0);
const PROBE = env.SMSC_PROBE === '1';

// Every line carries ts, the wall-clock time in milliseconds (fractional).
function out(o) { o.ts = performance.timeOrigin + performance.now(); process.stdout.write(JSON.stringify(o) + '\n'); }
const hex = (b) => Buffer.isBuffer(b) ? b.toString('hex') : undefined;

let nextId = parseInt(env.SMSC_FIRST_ID || '1A2B00', 16);
let sessions = 0;
let submits = 0;
const receivers = []; // sessions bound as receiver or transceiver

function stamp() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, '0');
  return p(d.getUTCFullYear() % 100) + p(d.getUTCMonth() + 1) + p(d.getUTCDate()) + p(d.getUTCHours()) + p(d.getUTCMinutes());
}

function sendReceipt(id, pdu, stat) {
  const session = receivers[receivers.length - 1];
  if (!session) { out({ event: 'no_receiver', id }); return; }
  const textID = RECEIPTS === 'text-dec' ? parseInt(id, 16).toString(10) : id;
  const err = stat === 'DELIVRD' ? '000' : '001';
  const text = `id:${textID} sub:001 dlvrd:${stat === 'DELIVRD' ? '001' : '000'} submit date:${stamp()} done date:${stamp()} stat:${stat} err:${err} text:`;
  const fields = {
    source_addr: pdu.destination_addr, destination_addr: pdu.source_addr,
    esm_class: 0x04, data_coding: 0, short_message: Buffer.from(text, 'ascii'),
  };
  if (RECEIPTS === 'tlv') {
    fields.receipted_message_id = id;
    fields.message_state = stat === 'DELIVRD' ? 2 : 5;
  }
  session.deliver_sm(fields, (resp) => {
    out({ event: 'deliver_sm_resp', id, status: resp.command_status });
  });
}

function onSession(session) {
  const sid = ++sessions;
  let bound = false;
  session.on('error', (e) => out({ event: 'error', session: sid, message: String(e && e.message) }));
  session.on('close', () => {
    const i = receivers.indexOf(session);
    if (i >= 0) receivers.splice(i, 1);
    out({ event: 'close', session: sid });
  });
  for (const cmd of ['bind_transceiver', 'bind_transmitter', 'bind_receiver']) {
    session.on(cmd, (pdu) => {
      session.pause();
      const ok = pdu.system_id === USER && pdu.password === PASS;
      const status = ok ? 0 : smpp.ESME_RINVPASWD;
      out({ event: 'bind', session: sid, command: cmd, system_id: pdu.system_id, interface_version: pdu.interface_version, status });
      session.send(pdu.response({ command_status: status, system_id: 'nodesmsc' }));
      if (!ok) { session.close(); return; }
      bound = true;
      if (cmd !== 'bind_transmitter') receivers.push(session);
      session.resume();
      if (PROBE) probe(session, sid);
    });
  }
  session.on('submit_sm', (pdu) => {
    if (SILENT) { out({ event: 'submit_sm_ignored', session: sid }); return; }
    submits++;
    const sm = pdu.short_message || {};
    const payload = pdu.message_payload;
    const ev = {
      event: 'submit_sm', session: sid, seq: pdu.sequence_number,
      source_addr: pdu.source_addr, source_addr_ton: pdu.source_addr_ton, source_addr_npi: pdu.source_addr_npi,
      destination_addr: pdu.destination_addr, dest_addr_ton: pdu.dest_addr_ton, dest_addr_npi: pdu.dest_addr_npi,
      esm_class: pdu.esm_class, data_coding: pdu.data_coding, registered_delivery: pdu.registered_delivery,
      text: typeof sm.message === 'string' ? sm.message : '',
      udh: (sm.udh || []).map(hex),
    };
    if (payload !== undefined) ev.payload_text = typeof payload.message === 'string' ? payload.message : hex(payload);
    let status = 0;
    if (throttle > 0) { throttle--; status = THROTTLE_STATUS; }
    else if (REJECT_DEST && pdu.destination_addr === REJECT_DEST) { status = smpp.ESME_RINVDSTADR; }
    const id = status === 0 ? (nextId++).toString(16).toUpperCase() : '';
    ev.status = status;
    ev.message_id = id;
    out(ev);
    session.send(pdu.response({ command_status: status, message_id: id }));
    if (status === 0 && RECEIPTS !== 'none') {
      let stat = STAT;
      const concat = (sm.udh || []).find((u) => u[0] === 0x00);
      if (FAIL_PART && concat && concat[4] === FAIL_PART) stat = 'UNDELIV';
      setTimeout(() => sendReceipt(id, pdu, stat), 5);
    }
    if (DROP_AFTER && submits === DROP_AFTER) {
      out({ event: 'dropping', session: sid });
      session.close();
    }
  });
  session.on('enquire_link', (pdu) => {
    out({ event: 'enquire_link', session: sid, silent: SILENT });
    if (!SILENT) session.send(pdu.response());
  });
  session.on('enquire_link_resp', (pdu) => out({ event: 'enquire_link_resp', session: sid, seq: pdu.sequence_number }));
  session.on('deliver_sm_resp', (pdu) => out({ event: 'deliver_sm_resp_any', session: sid, seq: pdu.sequence_number, status: pdu.command_status }));
  session.on('generic_nack', (pdu) => out({ event: 'generic_nack', session: sid, seq: pdu.sequence_number, status: pdu.command_status }));
  session.on('unbind', (pdu) => {
    out({ event: 'unbind', session: sid });
    session.send(pdu.response());
    session.close();
  });
  session.on('unknown', (pdu) => {
    out({ event: 'unknown', session: sid, command_id: pdu.command_id });
    session.send(pdu.response());
  });
  void bound;
}

// probe sends the ESME what it must answer: an enquire_link, an unknown
// command, a deliver_sm whose sm_length runs past the body, and an MO text.
function probe(session, sid) {
  session.enquire_link({}, (resp) => out({ event: 'probe_enquire_link_resp', session: sid, status: resp.command_status }));
  const unknown = Buffer.alloc(16);
  unknown.writeUInt32BE(16, 0); unknown.writeUInt32BE(0xAB, 4); unknown.writeUInt32BE(0, 8); unknown.writeUInt32BE(9001, 12);
  session.socket.write(unknown);
  // deliver_sm: 17 empty/zero mandatory fields, then sm_length 200 with no text.
  const body = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200]);
  const bad = Buffer.alloc(16 + body.length);
  bad.writeUInt32BE(bad.length, 0); bad.writeUInt32BE(0x05, 4); bad.writeUInt32BE(0, 8); bad.writeUInt32BE(9002, 12);
  body.copy(bad, 16);
  session.socket.write(bad);
  session.deliver_sm({ source_addr: '4915100000000', destination_addr: 'Verifyd', esm_class: 0, short_message: 'Hi there' },
    (resp) => out({ event: 'probe_mo_resp', session: sid, status: resp.command_status }));
}

const opts = {};
if (env.SMSC_TLS_KEY) {
  opts.key = fs.readFileSync(env.SMSC_TLS_KEY);
  opts.cert = fs.readFileSync(env.SMSC_TLS_CERT);
}
const server = smpp.createServer(opts, onSession);
server.on('error', (e) => { out({ event: 'server_error', message: String(e.message) }); process.exit(1); });
server.listen(Number(env.SMSC_PORT || 0), '127.0.0.1', () => {
  out({ event: 'listening', port: server.address().port, tls: !!env.SMSC_TLS_KEY });
});
process.on('SIGTERM', () => process.exit(0));
