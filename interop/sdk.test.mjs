// Drives verifyd through the official Telnyx Node SDK (telnyx@7.24.0, pinned
// in package-lock.json) against a running server. Nothing here is mocked: the
// requests go over HTTP to the real binary and the codes are read back from
// its console sender file.
//
// Environment (all required, else every test is skipped):
//   VERIFYD_URL          base URL including /v2, e.g. http://127.0.0.1:8080/v2
//   VERIFYD_API_KEY      a key of account A
//   VERIFYD_API_KEY_B    a key of a second account B
//   VERIFYD_CONSOLE_OUT  the file the server's console sender appends to
//
// go test ./cmd/verifyd -run TestSDKInterop sets all four up and runs this.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import Telnyx from 'telnyx';

const ENV = ['VERIFYD_URL', 'VERIFYD_API_KEY', 'VERIFYD_API_KEY_B', 'VERIFYD_CONSOLE_OUT'];
const missing = ENV.filter((k) => !process.env[k]);
const skip = missing.length
  ? `set ${missing.join(', ')} to run the SDK interop tests (go test ./cmd/verifyd -run TestSDKInterop does)`
  : false;

const BASE_URL = process.env.VERIFYD_URL;
const CONSOLE_OUT = process.env.VERIFYD_CONSOLE_OUT;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const REST_TIME_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/; // D37

// Unique per run, so the suite can also be pointed at a server that already
// holds data from earlier runs.
const RUN = randomUUID().slice(0, 8);
let phoneSeq = randomInt(0, 900000);

// ukMobile returns a fresh UK mobile number that libphonenumber holds valid
// (+44 7400 xxxxxx).
function ukMobile() {
  phoneSeq = (phoneSeq + 1) % 1000000;
  return '+447400' + String(phoneSeq).padStart(6, '0');
}

function client(apiKey) {
  return new Telnyx({ apiKey, baseURL: BASE_URL, maxRetries: 0, timeout: 10_000, logLevel: 'off' });
}

// consoleMessage polls the console sender file until a line for the
// verification appears (delivery is asynchronous) or the deadline passes.
async function consoleMessage(verificationId, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let text = '';
    try {
      text = await readFile(CONSOLE_OUT, 'utf8');
    } catch (e) {
      if (e.code !== 'ENOENT') throw e;
    }
    for (const line of text.split('\n')) {
      if (!line.includes(verificationId)) continue;
      let m;
      try {
        m = JSON.parse(line);
      } catch {
        continue; // a line still being written
      }
      if (m.verification_id === verificationId) return m;
    }
    if (Date.now() > deadline) {
      throw new Error(`no console message for verification ${verificationId} in ${CONSOLE_OUT} within ${timeoutMs} ms`);
    }
    await sleep(20);
  }
}

// wrongCode returns a code of the same length that differs from code.
function wrongCode(code) {
  const last = code.at(-1);
  return code.slice(0, -1) + (last === '9' ? '0' : String(Number(last) + 1));
}

// apiError awaits p, which must fail with an instance of Cls carrying the
// given HTTP status and Telnyx error code; it returns the error.
async function apiError(p, Cls, status, code) {
  let err;
  try {
    const res = await p;
    assert.fail(`expected ${Cls.name} (${status} ${code}), got success: ${JSON.stringify(res)}`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    err = e;
  }
  assert.ok(err instanceof Cls, `expected ${Cls.name}, got ${err?.constructor?.name}: ${err?.message}`);
  assert.equal(err.status, status, err.message);
  const first = err.error?.errors?.[0];
  assert.ok(first, `error body has no errors[0]: ${JSON.stringify(err.error)}`);
  assert.equal(first.code, code, `errors[0].code: ${JSON.stringify(err.error)}`);
  assert.equal(typeof first.title, 'string', 'errors[0].title must be a string');
  return err;
}

function assertVerification(v, want) {
  assert.match(v.id, UUID_RE);
  assert.equal(v.record_type, 'verification');
  assert.match(v.created_at, REST_TIME_RE);
  assert.match(v.updated_at, REST_TIME_RE);
  for (const [k, val] of Object.entries(want)) assert.deepEqual(v[k], val, `verification.${k}`);
}

// Channel settings every test profile needs: the operator default for
// whitelisted_destinations is "deny all" (D24).
const GB = { whitelisted_destinations: ['GB'] };

describe('verifyd through the official Telnyx SDK', { skip }, () => {
  let a; // account A
  let b; // account B
  let profile; // account A's main profile (sms code_length 6 after the PATCH test)

  before(async () => {
    a = client(process.env.VERIFYD_API_KEY);
    b = client(process.env.VERIFYD_API_KEY_B);
    const res = await a.verifyProfiles.create({
      name: `interop-${RUN}-main`,
      language: 'en-US',
      sms: { app_name: 'Interop', alpha_sender: 'Verifyd', code_length: 5, ...GB },
      call: { app_name: 'Interop', ...GB },
      flashcall: { ...GB },
    });
    profile = res.data;
  });

  after(() => {
    // Nothing to close: the SDK keeps no sockets open past a request.
  });

  test('verifyProfiles.create and retrieve', async () => {
    assert.match(profile.id, UUID_RE);
    assert.equal(profile.record_type, 'verification_profile');
    assert.equal(profile.name, `interop-${RUN}-main`);
    assert.equal(profile.language, 'en-US');
    assert.match(profile.created_at, REST_TIME_RE);
    assert.match(profile.updated_at, REST_TIME_RE);
    assert.equal(profile.sms.app_name, 'Interop');
    assert.equal(profile.sms.alpha_sender, 'Verifyd');
    assert.equal(profile.sms.code_length, 5);
    assert.deepEqual(profile.sms.whitelisted_destinations, ['GB']);
    assert.equal(profile.sms.default_verification_timeout_secs, 300); // D24 default
    for (const ch of ['sms', 'call', 'flashcall', 'whatsapp']) {
      assert.equal(typeof profile[ch], 'object', `profile.${ch} is always present (D24)`);
    }

    const got = (await a.verifyProfiles.retrieve(profile.id)).data;
    assert.deepEqual(got, profile);
  });

  test('verifyProfiles.update deep-merges channel objects (D25)', async () => {
    const upd = (await a.verifyProfiles.update(profile.id, { sms: { code_length: 6 } })).data;
    assert.equal(upd.id, profile.id);
    assert.equal(upd.sms.code_length, 6);
    assert.equal(upd.sms.app_name, 'Interop', 'PATCH sms.code_length must keep sms.app_name');
    assert.equal(upd.sms.alpha_sender, 'Verifyd', 'PATCH sms.code_length must keep sms.alpha_sender');
    assert.deepEqual(upd.sms.whitelisted_destinations, ['GB'], 'PATCH sms.code_length must keep whitelisted_destinations');
    assert.deepEqual(upd.call, profile.call, 'PATCH of sms must not touch call');
    assert.equal(upd.name, profile.name);

    const renamed = (await a.verifyProfiles.update(profile.id, { name: `interop-${RUN}-main2` })).data;
    assert.equal(renamed.name, `interop-${RUN}-main2`);
    assert.equal(renamed.sms.code_length, 6, 'a top-level PATCH keeps channel settings');

    const got = (await a.verifyProfiles.retrieve(profile.id)).data;
    assert.equal(got.name, `interop-${RUN}-main2`);
    assert.equal(got.sms.code_length, 6);
    assert.equal(got.sms.app_name, 'Interop');
    profile = got;
  });

  test('verifyProfiles.list auto-paginates, filter[name] is exact', async () => {
    const prefix = `interop-${RUN}-page-`;
    const ids = [];
    for (let i = 0; i < 7; i++) {
      ids.push((await a.verifyProfiles.create({ name: prefix + i, sms: GB })).data.id);
    }

    // The SDK's page parameters are the flat keys 'page[size]' / 'page[number]'.
    const seen = new Map();
    let pages = 0;
    const first = await a.verifyProfiles.list({ 'page[size]': 2 });
    assert.equal(first.data.length, 2);
    assert.equal(first.meta.page_number, 1);
    assert.equal(first.meta.page_size, 2);
    assert.ok(first.meta.total_results >= 8, `total_results ${first.meta.total_results}`);
    assert.equal(first.meta.total_pages, Math.ceil(first.meta.total_results / 2));
    for await (const page of first.iterPages()) {
      pages++;
      assert.ok(page.data.length <= 2);
      for (const p of page.data) seen.set(p.id, (seen.get(p.id) ?? 0) + 1);
    }
    assert.equal(pages, first.meta.total_pages);
    for (const [id, n] of seen) assert.equal(n, 1, `profile ${id} seen ${n} times`);
    for (const id of ids) assert.equal(seen.get(id), 1, `profile ${id} not seen while paging`);
    assert.equal(seen.size, first.meta.total_results);

    // The same through the item iterator on an unawaited PagePromise.
    const ours = [];
    for await (const p of a.verifyProfiles.list({ 'page[size]': 2 })) {
      if (p.name.startsWith(prefix)) ours.push(p.id);
    }
    assert.deepEqual(ours, ids, 'oldest first, stable across pages (D23)');

    const one = await a.verifyProfiles.list({ filter: { name: prefix + '3' } });
    assert.deepEqual(one.data.map((p) => p.id), [ids[3]]);
    assert.equal(one.meta.total_results, 1);
    const none = await a.verifyProfiles.list({ filter: { name: prefix.toUpperCase() + '3' } });
    assert.equal(none.data.length, 0, 'filter[name] is case-sensitive (D23)');
    const partial = await a.verifyProfiles.list({ filter: { name: prefix } });
    assert.equal(partial.data.length, 0, 'filter[name] is exact, not a prefix match (D23)');

    const past = await a.verifyProfiles.list({ 'page[size]': 2, 'page[number]': 1000 });
    assert.deepEqual(past.data, []);
    assert.equal(past.meta.page_number, 1000, 'past the end echoes page_number (D22)');
    assert.equal(past.meta.total_results, first.meta.total_results);

    await apiError(a.verifyProfiles.list({ 'page[size]': 0 }), Telnyx.UnprocessableEntityError, 422, '10015');
    await apiError(a.verifyProfiles.list({ 'page[size]': 251 }), Telnyx.UnprocessableEntityError, 422, '10015');

    for (const id of ids) {
      const del = (await a.verifyProfiles.delete(id)).data;
      assert.equal(del.id, id, 'DELETE returns the deleted record (D30)');
    }
    const gone = await a.verifyProfiles.list({ filter: { name: prefix + '3' } });
    assert.equal(gone.data.length, 0);
  });

  test('templates: createTemplate, retrieveTemplates, updateTemplate, used by a profile', async () => {
    const created = await a.verifyProfiles.createTemplate({ text: 'Code {{code}} for {{app_name}}.' });
    const tpl = created.data;
    assert.match(tpl.id, UUID_RE);
    assert.equal(tpl.text, 'Code {{code}} for {{app_name}}.');

    const list = await a.verifyProfiles.retrieveTemplates();
    assert.ok(Array.isArray(list.data));
    assert.ok(list.data.some((t) => t.id === tpl.id && t.text === tpl.text), 'new template listed');

    const updated = (await a.verifyProfiles.updateTemplate(tpl.id, { text: 'Your {{app_name}} code is {{code}}' })).data;
    assert.deepEqual(updated, { id: tpl.id, text: 'Your {{app_name}} code is {{code}}' });
    const list2 = await a.verifyProfiles.retrieveTemplates();
    assert.equal(list2.data.find((t) => t.id === tpl.id)?.text, 'Your {{app_name}} code is {{code}}');

    await apiError(a.verifyProfiles.createTemplate({ text: 'no placeholder' }), Telnyx.UnprocessableEntityError, 422, '10015');
    await apiError(a.verifyProfiles.updateTemplate(randomUUID(), { text: 'x {{code}}' }), Telnyx.NotFoundError, 404, '10005');

    const p = (
      await a.verifyProfiles.create({
        name: `interop-${RUN}-tpl`,
        sms: { app_name: 'TplApp', messaging_template_id: tpl.id, code_length: 7, ...GB },
      })
    ).data;
    assert.equal(p.sms.messaging_template_id, tpl.id);
    const phone = ukMobile();
    const v = (await a.verifications.triggerSMS({ phone_number: phone, verify_profile_id: p.id })).data;
    const m = await consoleMessage(v.id);
    assert.match(m.code, /^\d{7}$/);
    assert.equal(m.text, `Your TplApp code is ${m.code}`);

    // A built-in or unknown template ID in a profile is refused (D29).
    await apiError(
      a.verifyProfiles.create({ name: `interop-${RUN}-badtpl`, sms: { messaging_template_id: randomUUID() } }),
      Telnyx.UnprocessableEntityError, 422, '10017',
    );
    await a.verifyProfiles.delete(p.id);
  });

  test('SMS: trigger, retrieve, byPhoneNumber.list, verify by ID wrong then right', async () => {
    const phone = ukMobile();
    const v = (await a.verifications.triggerSMS({ phone_number: phone, verify_profile_id: profile.id })).data;
    assertVerification(v, {
      type: 'sms', phone_number: phone, verify_profile_id: profile.id, status: 'pending', timeout_secs: 300,
    });
    assert.ok(v.custom_code == null, 'no custom_code echoed');

    const got = (await a.verifications.retrieve(v.id)).data;
    assertVerification(got, { id: v.id, type: 'sms', phone_number: phone, status: 'pending' });

    const list = await a.verifications.byPhoneNumber.list(phone);
    assert.deepEqual(list.data.map((x) => x.id), [v.id]);
    assert.equal(list.meta.total_results, 1);
    assert.equal(list.meta.page_number, 1);
    assert.equal(list.meta.total_pages, 1);
    assert.equal(typeof list.meta.page_size, 'number');

    const m = await consoleMessage(v.id);
    assert.equal(m.channel, 'sms');
    assert.equal(m.to, phone);
    assert.match(m.code, /^\d{6}$/, 'code_length 6 after the PATCH');
    assert.ok(m.text.includes(m.code), 'the text carries the code');
    assert.ok(m.text.includes('Interop'), 'the text carries app_name');
    assert.ok(m.message_id, 'console line has message_id');
    assert.ok(!Object.values(got).includes(m.code), 'the code never appears in a response (D12)');

    const bad = (await a.verifications.actions.verify(v.id, { code: wrongCode(m.code) })).data;
    assert.deepEqual(bad, { phone_number: phone, response_code: 'rejected' });
    assert.equal((await a.verifications.retrieve(v.id)).data.status, 'pending', 'one wrong code leaves it pending');

    const ok = (await a.verifications.actions.verify(v.id, { code: m.code })).data;
    assert.deepEqual(ok, { phone_number: phone, response_code: 'accepted' });
    assert.equal((await a.verifications.retrieve(v.id)).data.status, 'accepted');

    const again = (await a.verifications.actions.verify(v.id, { code: m.code })).data;
    assert.equal(again.response_code, 'rejected', 'a code is single use (D17)');
  });

  test('SMS: byPhoneNumber.actions.verify, newest first, supersede', async () => {
    const phone = ukMobile();
    const v1 = (await a.verifications.triggerSMS({ phone_number: phone, verify_profile_id: profile.id })).data;
    const m1 = await consoleMessage(v1.id);
    const v2 = (await a.verifications.triggerSMS({ phone_number: phone, verify_profile_id: profile.id })).data;
    const m2 = await consoleMessage(v2.id);

    assert.equal((await a.verifications.retrieve(v1.id)).data.status, 'expired', 'a resend supersedes (D9)');
    const list = await a.verifications.byPhoneNumber.list(phone);
    assert.deepEqual(list.data.map((x) => x.id), [v2.id, v1.id], 'newest first (D21)');

    const params = { verify_profile_id: profile.id };
    if (m1.code !== m2.code) {
      const old = (await a.verifications.byPhoneNumber.actions.verify(phone, { code: m1.code, ...params })).data;
      assert.equal(old.response_code, 'rejected', 'the superseded code is dead');
    }
    const bad = (await a.verifications.byPhoneNumber.actions.verify(phone, { code: wrongCode(m2.code), ...params })).data;
    assert.deepEqual(bad, { phone_number: phone, response_code: 'rejected' });
    const ok = (await a.verifications.byPhoneNumber.actions.verify(phone, { code: m2.code, ...params })).data;
    assert.deepEqual(ok, { phone_number: phone, response_code: 'accepted' });
    assert.equal((await a.verifications.retrieve(v2.id)).data.status, 'accepted');

    // No enumeration: an unknown number answers like a wrong code (D18).
    const other = ukMobile();
    const unknown = (await a.verifications.byPhoneNumber.actions.verify(other, { code: '123456', ...params })).data;
    assert.deepEqual(unknown, { phone_number: other, response_code: 'rejected' });

    await apiError(
      a.verifications.byPhoneNumber.actions.verify(phone, { code: m2.code, verify_profile_id: randomUUID() }),
      Telnyx.UnprocessableEntityError, 422, '10017',
    );
    await apiError(
      a.verifications.byPhoneNumber.actions.verify(phone, { code: m2.code }),
      Telnyx.UnprocessableEntityError, 422, '10004',
    );
  });

  test('SMS: attempts run out → invalid', async () => {
    const phone = ukMobile();
    const v = (await a.verifications.triggerSMS({ phone_number: phone, verify_profile_id: profile.id })).data;
    const m = await consoleMessage(v.id);
    for (let i = 0; i < 5; i++) {
      const r = (await a.verifications.actions.verify(v.id, { code: wrongCode(m.code) })).data;
      assert.equal(r.response_code, 'rejected');
    }
    assert.equal((await a.verifications.retrieve(v.id)).data.status, 'invalid', 'five wrong codes (D8)');
    const late = (await a.verifications.actions.verify(v.id, { code: m.code })).data;
    assert.equal(late.response_code, 'rejected', 'right code after the budget is used up');
  });

  test('call: triggerCall and verify by phone', async () => {
    const phone = ukMobile();
    const v = (
      await a.verifications.triggerCall({
        phone_number: phone, verify_profile_id: profile.id, extension: '1ww2', timeout_secs: 120,
      })
    ).data;
    assertVerification(v, { type: 'call', phone_number: phone, status: 'pending', timeout_secs: 120 });
    const m = await consoleMessage(v.id);
    assert.equal(m.channel, 'call');
    assert.equal(m.to, phone);
    assert.match(m.code, /^\d{5}$/, 'call keeps its own code_length (default 5)');
    const ok = (
      await a.verifications.byPhoneNumber.actions.verify(phone, { code: m.code, verify_profile_id: profile.id })
    ).data;
    assert.equal(ok.response_code, 'accepted');
  });

  test('flash call: triggerFlashcall, code from the caller ID', async () => {
    const phone = ukMobile();
    const v = (await a.verifications.triggerFlashcall({ phone_number: phone, verify_profile_id: profile.id })).data;
    assertVerification(v, { type: 'flashcall', phone_number: phone, status: 'pending' });
    const m = await consoleMessage(v.id);
    assert.equal(m.channel, 'flashcall');
    assert.equal(m.to, phone);
    assert.match(m.caller_id ?? '', /^\+\d+$/, 'flash call console line has caller_id');
    const code = m.caller_id.slice(-4); // D19: trailing 4 digits
    if (m.code) assert.equal(m.code, code, 'console code = trailing caller-ID digits');
    const ok = (await a.verifications.actions.verify(v.id, { code })).data;
    assert.equal(ok.response_code, 'accepted');
  });

  test('custom_code: echoed once, verify by status', async () => {
    const phone = ukMobile();
    const v = (
      await a.verifications.triggerSMS({ phone_number: phone, verify_profile_id: profile.id, custom_code: '424242' })
    ).data;
    assertVerification(v, { status: 'pending', custom_code: '424242' });
    const m = await consoleMessage(v.id);
    assert.equal(m.code, '424242', 'the custom code is the one sent');
    const got = (await a.verifications.retrieve(v.id)).data;
    assert.ok(got.custom_code == null, 'custom_code is not shown by GET (D12)');

    const rej = (await a.verifications.actions.verify(v.id, { status: 'rejected' })).data;
    assert.deepEqual(rej, { phone_number: phone, response_code: 'rejected' });
    assert.equal((await a.verifications.retrieve(v.id)).data.status, 'pending', 'status rejected = one failed attempt');
    const acc = (await a.verifications.actions.verify(v.id, { status: 'accepted' })).data;
    assert.deepEqual(acc, { phone_number: phone, response_code: 'accepted' });
    assert.equal((await a.verifications.retrieve(v.id)).data.status, 'accepted');
    await apiError(a.verifications.actions.verify(v.id, { status: 'accepted' }), Telnyx.UnprocessableEntityError, 422, 'V0006');

    // custom code checked by code, through the phone number
    const phone2 = ukMobile();
    const v2 = (
      await a.verifications.triggerSMS({ phone_number: phone2, verify_profile_id: profile.id, custom_code: '9876' })
    ).data;
    const ok = (
      await a.verifications.byPhoneNumber.actions.verify(phone2, { code: '9876', verify_profile_id: profile.id })
    ).data;
    assert.equal(ok.response_code, 'accepted');
    assert.equal((await a.verifications.retrieve(v2.id)).data.status, 'accepted');

    // status only with custom_code; exactly one of code/status (D16)
    const v3 = (await a.verifications.triggerSMS({ phone_number: ukMobile(), verify_profile_id: profile.id })).data;
    await apiError(a.verifications.actions.verify(v3.id, { status: 'accepted' }), Telnyx.UnprocessableEntityError, 422, '10015');
    await apiError(a.verifications.actions.verify(v3.id, {}), Telnyx.UnprocessableEntityError, 422, '10004');
    await apiError(
      a.verifications.actions.verify(v3.id, { code: '12345', status: 'accepted' }),
      Telnyx.UnprocessableEntityError, 422, '10015',
    );
    await apiError(
      a.verifications.triggerSMS({ phone_number: ukMobile(), verify_profile_id: profile.id, custom_code: '12' }),
      Telnyx.UnprocessableEntityError, 422, '10015',
    );
  });

  test('duplicate POSTs: Idempotency-Key replays the first response (D13)', async () => {
    const phone = ukMobile();
    const body = { phone_number: phone, verify_profile_id: profile.id };
    const key = `interop-${RUN}-${randomUUID()}`;
    const first = (await a.verifications.triggerSMS(body, { headers: { 'Idempotency-Key': key } })).data;
    const second = (await a.verifications.triggerSMS(body, { headers: { 'Idempotency-Key': key } })).data;
    assert.equal(second.id, first.id, 'same Idempotency-Key → same verification');
    const list = await a.verifications.byPhoneNumber.list(phone);
    assert.equal(list.data.length, 1, 'one verification, one code sent');
  });

  test('duplicate POSTs: an SDK retry of a trigger whose response was lost sends no second code (D13)', async () => {
    // A fetch that delivers the first trigger to the server, then loses its
    // response; the SDK retries with X-Stainless-Retry-Count: 1.
    let lost = false;
    const retryCounts = [];
    const lossy = async (url, init) => {
      const res = await fetch(url, init);
      if (String(url).endsWith('/verifications/sms')) {
        retryCounts.push(new Headers(init?.headers).get('x-stainless-retry-count'));
        if (!lost) {
          lost = true;
          await res.arrayBuffer();
          throw new TypeError('fetch failed (response lost on purpose)');
        }
      }
      return res;
    };
    const retrying = new Telnyx({
      apiKey: process.env.VERIFYD_API_KEY, baseURL: BASE_URL, maxRetries: 1, timeout: 10_000, logLevel: 'off', fetch: lossy,
    });
    const phone = ukMobile();
    const v = (await retrying.verifications.triggerSMS({ phone_number: phone, verify_profile_id: profile.id })).data;
    assert.deepEqual(retryCounts, ['0', '1'], 'the SDK retried once');
    const list = await a.verifications.byPhoneNumber.list(phone);
    assert.deepEqual(list.data.map((x) => x.id), [v.id], 'the retry returned the first verification');
    assert.equal(list.data[0].status, 'pending');
  });

  test('errors: bad API key → AuthenticationError 401 10009', async () => {
    const bad = client('KEYnot-a-real-key');
    await apiError(bad.verifyProfiles.list(), Telnyx.AuthenticationError, 401, '10009');
    await apiError(bad.verifications.retrieve(randomUUID()), Telnyx.AuthenticationError, 401, '10009');
    await apiError(
      bad.verifications.triggerSMS({ phone_number: ukMobile(), verify_profile_id: profile.id }),
      Telnyx.AuthenticationError, 401, '10009',
    );
  });

  test('errors: unknown IDs → NotFoundError 404 10005, malformed ID → BadRequestError 400 10006', async () => {
    await apiError(a.verifications.retrieve(randomUUID()), Telnyx.NotFoundError, 404, '10005');
    await apiError(a.verifyProfiles.retrieve(randomUUID()), Telnyx.NotFoundError, 404, '10005');
    await apiError(a.verifications.actions.verify(randomUUID(), { code: '12345' }), Telnyx.NotFoundError, 404, '10005');
    const badID = await apiError(a.verifications.retrieve('not-a-uuid'), Telnyx.BadRequestError, 400, '10006');
    assert.equal(badID.error.errors[0].source?.parameter, 'verification_id');
  });

  test('errors: phone numbers → UnprocessableEntityError 422 10016 / 10002', async () => {
    const e = await apiError(
      a.verifications.triggerSMS({ phone_number: '447400123456', verify_profile_id: profile.id }),
      Telnyx.UnprocessableEntityError, 422, '10016',
    );
    assert.equal(e.error.errors[0].source?.pointer, '/phone_number');
    await apiError(
      a.verifications.triggerSMS({ phone_number: '+44 7400 123456', verify_profile_id: profile.id }),
      Telnyx.UnprocessableEntityError, 422, '10016',
    );
    await apiError(
      a.verifications.triggerSMS({ phone_number: '+4412', verify_profile_id: profile.id }),
      Telnyx.UnprocessableEntityError, 422, '10002',
    );
    const pe = await apiError(a.verifications.byPhoneNumber.list('07400123456'), Telnyx.UnprocessableEntityError, 422, '10016');
    assert.equal(pe.error.errors[0].source?.parameter, 'phone_number');
  });

  test('errors: body validation → 422 10004 / 10017', async () => {
    const miss = await apiError(
      a.verifications.triggerSMS({ phone_number: ukMobile() }),
      Telnyx.UnprocessableEntityError, 422, '10004',
    );
    assert.equal(miss.error.errors[0].source?.pointer, '/verify_profile_id');
    await apiError(
      a.verifications.triggerSMS({ phone_number: ukMobile(), verify_profile_id: randomUUID() }),
      Telnyx.UnprocessableEntityError, 422, '10017',
    );
    await apiError(a.verifyProfiles.create({}), Telnyx.UnprocessableEntityError, 422, '10004');
  });

  test('policy: empty whitelisted_destinations (operator default) denies all → 422 V0001 (D24)', async () => {
    const closed = (await a.verifyProfiles.create({ name: `interop-${RUN}-closed` })).data;
    assert.deepEqual(closed.sms.whitelisted_destinations, [], 'shipped operator default is empty');
    try {
      await apiError(
        a.verifications.triggerSMS({ phone_number: ukMobile(), verify_profile_id: closed.id }),
        Telnyx.UnprocessableEntityError, 422, 'V0001',
      );
      // A profile open to GB only refuses a US number.
      await apiError(
        a.verifications.triggerSMS({ phone_number: '+12025550123', verify_profile_id: profile.id }),
        Telnyx.UnprocessableEntityError, 422, 'V0001',
      );
    } finally {
      await a.verifyProfiles.delete(closed.id);
    }
  });

  test('policy: SMS to a landline → 422 V0002', async () => {
    // +44 20 7946 0xxx: a valid London fixed-line number (Ofcom drama range).
    const e = await apiError(
      a.verifications.triggerSMS({ phone_number: '+442079460123', verify_profile_id: profile.id }),
      Telnyx.UnprocessableEntityError, 422, 'V0002',
    );
    assert.equal(e.error.errors[0].source?.pointer, '/phone_number');
  });

  test('policy: no WhatsApp sender in the console build → 422 V0009', async () => {
    await apiError(
      a.verifications.triggerWhatsappVerification({ phone_number: ukMobile(), verify_profile_id: profile.id }),
      Telnyx.UnprocessableEntityError, 422, 'V0009',
    );
  });

  test('profile delete: record returned, 404 after, pending verifications expire (D30)', async () => {
    const p = (await a.verifyProfiles.create({ name: `interop-${RUN}-del`, sms: GB })).data;
    const v = (await a.verifications.triggerSMS({ phone_number: ukMobile(), verify_profile_id: p.id })).data;
    const del = (await a.verifyProfiles.delete(p.id)).data;
    assert.equal(del.id, p.id);
    assert.equal(del.name, p.name);
    await apiError(a.verifyProfiles.retrieve(p.id), Telnyx.NotFoundError, 404, '10005');
    await apiError(a.verifyProfiles.delete(p.id), Telnyx.NotFoundError, 404, '10005');
    await apiError(a.verifyProfiles.update(p.id, { name: 'x' }), Telnyx.NotFoundError, 404, '10005');
    assert.equal((await a.verifications.retrieve(v.id)).data.status, 'expired');
  });

  test('account isolation: B sees nothing of A', async () => {
    const phone = ukMobile();
    const v = (await a.verifications.triggerSMS({ phone_number: phone, verify_profile_id: profile.id })).data;
    const m = await consoleMessage(v.id);

    await apiError(b.verifyProfiles.retrieve(profile.id), Telnyx.NotFoundError, 404, '10005');
    await apiError(b.verifyProfiles.update(profile.id, { name: 'stolen' }), Telnyx.NotFoundError, 404, '10005');
    await apiError(b.verifyProfiles.delete(profile.id), Telnyx.NotFoundError, 404, '10005');
    await apiError(b.verifications.retrieve(v.id), Telnyx.NotFoundError, 404, '10005');
    await apiError(b.verifications.actions.verify(v.id, { code: m.code }), Telnyx.NotFoundError, 404, '10005');

    const list = await b.verifyProfiles.list();
    assert.deepEqual(list.data, [], "B lists none of A's profiles");
    assert.deepEqual(list.meta, { page_number: 1, page_size: 25, total_pages: 0, total_results: 0 }, 'empty list meta (D22)');
    const items = [];
    for await (const p of b.verifyProfiles.list({ 'page[size]': 1 })) items.push(p);
    assert.deepEqual(items, []);

    const byPhone = await b.verifications.byPhoneNumber.list(phone);
    assert.deepEqual(byPhone.data, []);
    assert.equal(byPhone.meta.total_results, 0);

    const tpls = await b.verifyProfiles.retrieveTemplates();
    assert.deepEqual(tpls.data, [], "B lists none of A's templates");

    await apiError(
      b.verifications.triggerSMS({ phone_number: ukMobile(), verify_profile_id: profile.id }),
      Telnyx.UnprocessableEntityError, 422, '10017',
    );
    await apiError(
      b.verifications.byPhoneNumber.actions.verify(phone, { code: m.code, verify_profile_id: profile.id }),
      Telnyx.UnprocessableEntityError, 422, '10017',
    );

    // A's verification is untouched by B's attempts.
    const ok = (await a.verifications.actions.verify(v.id, { code: m.code })).data;
    assert.equal(ok.response_code, 'accepted');
  });
});
