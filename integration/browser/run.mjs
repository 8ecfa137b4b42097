// run.mjs: the browser side of boshd's browser tests (integration/browser_test.go).
//
// Usage: node run.mjs < input.json
//
// The Go test starts Prosody, boshd (and nginx, or scripts/demo) and the
// web server for the test pages, then runs this script with a JSON object on
// standard input naming the scenario and where everything is. The script
// launches Debian's Chromium through playwright-core with a fresh profile,
// plays the scenario, and prints one JSON line on standard output:
// {"ok": true, ...facts for the Go test to check} or {"ok": false, "error": ...}.
// It exits 0 when ok, 1 otherwise. Progress and diagnostics go to standard
// error. Nothing waits for a fixed time: every wait is for an event, bounded
// by input.timeoutMs.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const started = Date.now();

// The Chromium flags the project uses everywhere; the profile directory is
// given to launchPersistentContext instead of --user-data-dir.
const chromiumFlags = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
];

function log(...args) {
    const secs = ((Date.now() - started) / 1000).toFixed(2).padStart(7);
    process.stderr.write(`[${secs}s] ${args.join(' ')}\n`);
}

// check throws unless cond holds.
function check(cond, message) {
    if (!cond) {
        throw new Error(message);
    }
}

// until resolves once cond() holds. It checks cond at once and then
// whenever the scenario calls the functions in waiters (on each event that
// may change it); it rejects with the message describe() returns when
// timeoutMs pass first.
function until(waiters, cond, timeoutMs, describe) {
    return new Promise((resolve, reject) => {
        const done = () => {
            if (cond()) {
                clearTimeout(timer);
                waiters.delete(done);
                resolve();
            }
        };
        const timer = setTimeout(() => {
            waiters.delete(done);
            reject(new Error(describe()));
        }, timeoutMs);
        waiters.add(done);
        done();
    });
}

async function readStdin() {
    const chunks = [];
    for await (const chunk of process.stdin) {
        chunks.push(chunk);
    }
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

// Session is one launched Chromium and the pages opened in it. Pages of
// different users that must not share storage get their own context.
class Session {
    constructor(input) {
        this.input = input;
        this.pages = [];
        this.dirs = [];
    }

    async launch(extra = {}) {
        const base = this.input.tmpDir || tmpdir();
        mkdirSync(base, { recursive: true });
        const dir = mkdtempSync(join(base, 'chromium-profile-'));
        this.dirs.push(dir);
        // Every host name but those the scenario maps resolves to
        // nothing, without a DNS query: the pages reach 127.0.0.1 only
        // (Converse's login page, for one, shows logos from its web site).
        const hostRules = [...(this.input.hostRules || []), 'MAP * ~NOTFOUND', 'EXCLUDE 127.0.0.1'].join(', ');
        const options = {
            executablePath: this.input.chromium || '/usr/bin/chromium',
            // input.chromiumArgs: a test's own flags, such as the
            // certificate it trusts (--ignore-certificate-errors-spki-list).
            args: [...chromiumFlags, `--host-resolver-rules=${hostRules}`, ...(this.input.chromiumArgs || [])],
            ignoreHTTPSErrors: !!this.input.ignoreHTTPSErrors,
            viewport: { width: 1280, height: 800 },
            ...extra,
        };
        this.context = await chromium.launchPersistentContext(dir, options);
        this.context.setDefaultTimeout(this.input.timeoutMs);
        log('chromium', this.context.browser()?.version() ?? '', 'profile', dir);
        return this.context;
    }

    // isolatedContext returns a new context of the same browser, with its
    // own storage, for a second user.
    async isolatedContext(extra = {}) {
        const ctx = await this.context.browser().newContext({
            ignoreHTTPSErrors: !!this.input.ignoreHTTPSErrors,
            viewport: { width: 1280, height: 800 },
            ...extra,
        });
        ctx.setDefaultTimeout(this.input.timeoutMs);
        return ctx;
    }

    // page opens a page named name (for the logs) in ctx, recording its
    // console errors and the BOSH requests it makes.
    async page(name, ctx = this.context) {
        const page = await ctx.newPage();
        page.name = name;
        page.errors = [];
        page.boshRequests = [];
        page.on('console', (msg) => {
            if (this.quietConsole && this.quietConsole.test(msg.text())) {
                return;
            }
            if (/ERR_NAME_NOT_RESOLVED/.test(msg.text())) {
                return; // a host outside the test, see hostRules
            }
            if (msg.type() === 'error' || msg.type() === 'warning' || this.input.logConsole) {
                log(`${name} console.${msg.type()}:`, msg.text().slice(0, 500));
            }
        });
        const isBOSH = (req) => req.method() === 'POST' && new URL(req.url()).pathname.endsWith(this.input.boshPath || '/http-bind');
        // BOSH requests that got no answer at all (a reset, a refused
        // connection), which page.boshResponses never sees.
        page.boshFailures = [];
        page.on('requestfailed', (req) => {
            const failure = req.failure()?.errorText;
            if (isBOSH(req)) {
                page.boshFailures.push({ url: req.url(), rid: attr(req.postData() || '', 'rid'), failure });
            }
            if (failure !== 'net::ERR_NAME_NOT_RESOLVED') {
                log(`${name} request failed: ${req.url().slice(0, 200)} ${failure}`);
            }
        });
        // Every console error or warning, for checks such as Strophe's
        // "Websocket closed unexpectedly".
        page.consoleErrors = [];
        page.on('console', (msg) => {
            if (msg.type() === 'error' || msg.type() === 'warning') {
                page.consoleErrors.push(msg.text());
            }
        });
        // The page's WebSockets as the browser's network saw them: URL,
        // every frame each way, whether it closed (wsTraffic); and, from
        // inside the page (wrapWebSocket), the subprotocol and the close
        // code and reason the page was told.
        page.websockets = [];
        page.on('websocket', (ws) => {
            const entry = { url: ws.url(), sent: [], received: [], closed: false, error: null };
            page.websockets.push(entry);
            ws.on('framesent', (f) => entry.sent.push(String(f.payload)));
            ws.on('framereceived', (f) => {
                entry.received.push(String(f.payload));
                (page.wsWaiters || new Set()).forEach((w) => w());
            });
            ws.on('socketerror', (e) => (entry.error = String(e)));
            ws.on('close', () => {
                entry.closed = true;
                (page.wsWaiters || new Set()).forEach((w) => w());
            });
        });
        page.wsWaiters = new Set();
        await page.addInitScript(wrapWebSocket);
        page.on('pageerror', (err) => {
            page.errors.push(String(err));
            log(`${name} page error:`, String(err).slice(0, 500));
        });
        page.on('request', (req) => {
            if (isBOSH(req)) {
                const body = req.postData() || '';
                page.boshRequests.push({ url: req.url(), rid: attr(body, 'rid'), sid: attr(body, 'sid'), type: attr(body, 'type'), body: body.slice(0, 300) });
                page.boshWaiters.forEach((w) => w());
            }
        });
        // The BOSH responses in the order they reach the browser, with the
        // rid they answer, when (ms since the start of the run), and the
        // ids of the messages they carry.
        page.boshResponses = [];
        page.bodyReads = [];
        // Called on each BOSH request made and each response read (until).
        page.boshWaiters = new Set();
        const readResponse = async (resp) => {
            const entry = { rid: attr(resp.request().postData() || '', 'rid'), at: Date.now() - started, status: resp.status() };
            page.boshResponses.push(entry);
            try {
                const text = await resp.text();
                entry.ids = [...text.matchAll(/<message [^>]*id=['"]([^'"]+)['"]/g)].map((m) => m[1]);
                // A terminal answer names its condition in the <body>
                // start tag.
                entry.condition = attr(text, 'condition');
            } catch (e) {
                entry.ids = [];
                log(`${name}: cannot read the response to rid ${entry.rid}: ${e.message}`);
            }
            page.boshWaiters.forEach((w) => w());
        };
        page.on('response', (resp) => {
            if (isBOSH(resp.request())) {
                page.bodyReads.push(readResponse(resp));
            }
        });
        this.pages.push(page);
        return page;
    }

    // dump writes what the pages knew to the log, after a failure.
    async dump() {
        for (const page of this.pages) {
            try {
                const info = await page.evaluate(() => {
                    const c = window.chat;
                    return c ? { statuses: c.statuses, received: (c.received || []).length, traffic: c.traffic || [] } : null;
                });
                if (info) {
                    const file = join(this.input.tmpDir || tmpdir(), `failure-${page.name}-traffic.txt`);
                    writeFileSync(file, info.traffic.join('\n') + '\n');
                    info.traffic = info.traffic.slice(-30);
                    log(`${page.name}: BOSH traffic in ${file}`);
                    log(`${page.name}: statuses ${JSON.stringify(info.statuses)}, ${info.received} messages received; last BOSH traffic:\n  ` + info.traffic.join('\n  '));
                }
                log(`${page.name}: last BOSH requests: ${JSON.stringify(page.boshRequests.slice(-10).map((r) => [r.rid, r.sid, r.type]))}`);
                // Responses that reached the browser before the response
                // to a lower rid (XEP-0124 §8 is about the order boshd
                // answers in; this is the order the browser saw).
                const rs = page.boshResponses;
                writeFileSync(join(this.input.tmpDir || tmpdir(), `failure-${page.name}-responses.json`), JSON.stringify({ requests: page.boshRequests, responses: rs }, null, 1));
                const inversions = [];
                for (let i = 1; i < rs.length; i++) {
                    if (Number(rs[i].rid) < Number(rs[i - 1].rid)) {
                        inversions.push({ first: rs[i - 1], then: rs[i] });
                    }
                }
                log(`${page.name}: ${rs.length} BOSH responses, ${inversions.length} reached the browser after a higher rid's: ${JSON.stringify(inversions.slice(0, 5))}`);
                const shot = join(this.input.tmpDir || tmpdir(), `failure-${page.name}.png`);
                await page.screenshot({ path: shot, timeout: 5000 });
                log(`${page.name}: screenshot ${shot}`);
            } catch (e) {
                log(`${page.name}: cannot dump: ${e.message}`);
            }
        }
    }

    async close() {
        try {
            await this.context?.close();
        } catch (e) {
            log('closing chromium:', e.message);
        }
        for (const dir of this.dirs) {
            rmSync(dir, { recursive: true, force: true });
        }
    }
}

// wrapWebSocket runs in each page before its scripts: window.WebSocket
// becomes a subclass that records, in window.wsLog, each socket's URL,
// subprotocol and close event (code, reason, wasClean), which the
// browser's network events do not carry.
function wrapWebSocket() {
    const Native = window.WebSocket;
    const wsLog = [];
    window.wsLog = wsLog;
    window.WebSocket = class extends Native {
        constructor(url, protocols) {
            super(url, protocols);
            const entry = { url: String(url), protocol: null, opened: false, close: null };
            wsLog.push(entry);
            this.addEventListener('open', () => {
                entry.opened = true;
                entry.protocol = this.protocol;
            });
            this.addEventListener('close', (e) => {
                entry.close = { code: e.code, reason: e.reason, wasClean: e.wasClean };
            });
        }
    };
}

// attr returns the value of attribute name in the first tag of xml.
function attr(xml, name) {
    const m = new RegExp(`\\s${name}=['"]([^'"]*)['"]`).exec(xml.slice(0, xml.indexOf('>') + 1));
    return m ? m[1] : null;
}

function boshURL(input) {
    return input.baseURL + (input.boshPath || '/http-bind');
}

// --- Strophe.js -----------------------------------------------------------

async function stropheLogin(input, page, user, resource, extra = {}) {
    await page.goto(input.baseURL + '/strophe.html');
    const res = await page.evaluate((o) => window.chat.login(o), {
        jid: `${user.jid}/${resource}`,
        password: user.password,
        wait: input.wait,
        ...extra,
    });
    log(`${page.name}: logged in as ${res.jid}, sid ${res.sid}`);
    return res;
}

// waitBodies waits until page has received prefix-end, the last message of
// a sendMany, and returns the bodies received with that prefix, in order.
async function waitBodies(input, page, prefix, n) {
    await page.waitForFunction((p) => window.chat.received.some((m) => m.body === p + '-end'), prefix, { timeout: input.timeoutMs, polling: 50 });
    // Strophe.js may hand a later response's stanzas to the page before
    // an earlier one's (strophe/strophejs#709), so prefix-end can come
    // before the last few: give those a moment, then let the checks say
    // what is missing.
    await page
        .waitForFunction(
            ([p, n]) => new Set(window.chat.received.filter((m) => m.body && m.body.startsWith(p + '-')).map((m) => m.body)).size >= n + 1,
            [prefix, n],
            { timeout: Math.min(input.timeoutMs, 5000), polling: 50 },
        )
        .catch(() => {});
    return page.evaluate((p) => window.chat.received.filter((m) => m.body && m.body.startsWith(p + '-')).map((m) => m.body), prefix);
}

// expected returns prefix-0 ... prefix-(n-1), prefix-end.
function expected(prefix, n) {
    return [...Array(n).keys()].map((i) => `${prefix}-${i}`).concat([`${prefix}-end`]);
}

// checkOnce checks that bodies hold each of prefix-0 ... prefix-(n-1),
// prefix-end exactly once, and returns how many of them are not where
// they would be in order.
function checkOnce(bodies, prefix, n) {
    const want = expected(prefix, n);
    const seen = new Map();
    for (const b of bodies) {
        seen.set(b, (seen.get(b) || 0) + 1);
    }
    const duplicates = [...seen].filter(([, c]) => c > 1).map(([b]) => b);
    const missing = want.filter((b) => !seen.has(b));
    check(duplicates.length === 0, `${prefix}: duplicated ${duplicates.slice(0, 10).join(', ')}`);
    check(missing.length === 0, `${prefix}: missing ${missing.slice(0, 10).join(', ')} (${missing.length} in all)`);
    check(bodies.length === want.length, `${prefix}: ${bodies.length} messages, want ${want.length}`);
    return bodies.filter((b, i) => b !== want[i]).length;
}

// checkSequence checks that bodies are exactly prefix-0 ... prefix-(n-1),
// prefix-end: each once, in order. It returns n.
function checkSequence(bodies, prefix, n) {
    checkOnce(bodies, prefix, n);
    const want = expected(prefix, n);
    const firstOff = bodies.findIndex((b, i) => b !== want[i]);
    check(
        firstOff === -1,
        `${prefix}: out of order at ${firstOff}: got ${bodies[firstOff]}, want ${want[firstOff]}; received ... ${bodies.slice(Math.max(0, firstOff - 3), firstOff + 6).join(' ')} ...`,
    );
    return n;
}

// wireBodies returns the bodies with prefix that the BOSH responses to page
// carried, taking the responses in rid order: the sequence boshd sent, as
// the browser's network received it, whatever order the client library
// then handled the responses in.
async function wireBodies(page, prefix) {
    await Promise.all(page.bodyReads);
    const byRid = new Map();
    for (const r of page.boshResponses) {
        if (r.status === 200 && !byRid.has(r.rid)) {
            byRid.set(r.rid, r.ids || []);
        }
    }
    return [...byRid]
        .sort(([a], [b]) => Number(a) - Number(b))
        .flatMap(([, ids]) => ids)
        .filter((id) => id.startsWith(prefix + '-'));
}

// checkDelivery checks that the BOSH responses to page carried
// prefix-0 ... prefix-(n-1), prefix-end exactly once each, in rid order,
// and that the client library handed each to the page exactly once
// (bodies, in the order it did). It returns the number of messages the
// library handed over out of order: Strophe.js handles each response as
// soon as its XHR completes, so when two responses complete at nearly the
// same time it may handle rid N+1's before rid N's (strophe/strophejs#709),
// which no connection manager can prevent.
async function checkDelivery(page, bodies, prefix, n) {
    checkSequence(await wireBodies(page, prefix), prefix, n);
    const misplaced = checkOnce(bodies, prefix, n);
    if (misplaced > 0) {
        const ridOf = new Map();
        for (const r of page.boshResponses) {
            for (const id of r.ids || []) {
                ridOf.set(id, r.rid);
            }
        }
        const pairs = [];
        for (let i = 1; i < bodies.length; i++) {
            const [x, y] = [bodies[i - 1], bodies[i]];
            if (Number(ridOf.get(y)) < Number(ridOf.get(x))) {
                pairs.push(`${x}@${ridOf.get(x)} before ${y}@${ridOf.get(y)}`);
            }
        }
        log(`${page.name}: the client library handed over ${misplaced} of the ${prefix} messages out of order, although the BOSH responses carried them in rid order: ${pairs.join('; ')}`);
    }
    return misplaced;
}

// exchange has alice's page pa (logged in as a) and bob's page pb (as b)
// send each other input.messages messages at once, waits for all of them
// and checks their delivery (checkDelivery).
async function exchange(input, pa, pb, a, b) {
    const n = input.messages;
    const t0 = Date.now();
    await Promise.all([
        pa.evaluate(([to, n]) => window.chat.sendMany(to, 'a2b', n), [b.jid, n]),
        pb.evaluate(([to, n]) => window.chat.sendMany(to, 'b2a', n), [a.jid, n]),
    ]);
    const [atB, atA] = await Promise.all([waitBodies(input, pb, 'a2b', n), waitBodies(input, pa, 'b2a', n)]);
    const millis = Date.now() - t0;
    return {
        aliceToBob: n,
        bobToAlice: n,
        handledOutOfOrder: (await checkDelivery(pb, atB, 'a2b', n)) + (await checkDelivery(pa, atA, 'b2a', n)),
        millis,
        sids: [a.sid, b.sid],
    };
}

// (a) Two users exchange input.messages messages in both directions at
// once; each must arrive exactly once and in order.
async function stropheExchange(input, s) {
    await s.launch(input.forwardedFor ? { extraHTTPHeaders: { 'X-Forwarded-For': input.forwardedFor } } : {});
    const pa = await s.page('alice');
    const pb = await s.page('bob');
    const [a, b] = await Promise.all([
        stropheLogin(input, pa, input.users.alice, 'strophe-a'),
        stropheLogin(input, pb, input.users.bob, 'strophe-b'),
    ]);
    const result = {
        ...(await exchange(input, pa, pb, a, b)),
        requests: pa.boshRequests.length + pb.boshRequests.length,
    };
    log(`exchanged ${result.aliceToBob} messages each way in ${result.millis} ms over ${result.requests} BOSH requests`);
    await Promise.all([pa.evaluate(() => window.chat.logout()), pb.evaluate(() => window.chat.logout())]);
    return result;
}

// (b) keepalive: alice's page is reloaded mid-conversation; while the new
// page is loading (the old one is gone, the new one has not restored yet),
// bob sends more messages. The new page restores the session (same sid,
// next rid) and receives everything exactly once, in order.
async function stropheKeepalive(input, s) {
    await s.launch();
    const pa = await s.page('alice');
    const pb = await s.page('bob');

    // Every message alice's pages receive, across the reload, reported
    // by the page as it arrives.
    const atAlice = [];
    const waiters = new Set();
    await pa.exposeFunction('reportMessage', (m) => {
        atAlice.push(m);
        waiters.forEach((w) => w());
    });
    const fromBob = () => atAlice.filter((m) => m.body?.startsWith('b2a-')).length;
    const waitAlice = (count) =>
        until(waiters, () => fromBob() >= count, input.timeoutMs, () => `alice has ${fromBob()} messages from bob, want ${count}`);

    // With input.inflight, a request of the old page is on its way when
    // the page goes away: bob's next message answers alice's held poll,
    // and the poll Strophe sends next is kept in the browser, so it dies
    // with the page without reaching boshd. Strophe has already stored
    // the rid after it for the restored page. The route is in place from
    // the start, letting requests through until it is armed: a request
    // already in flight when a route is added may have its response go
    // unreported to the scenario, which then cannot check what it carried.
    const boshPattern = '**' + (input.boshPath || '/http-bind');
    let trapped = null;
    let armed = false;
    let caught;
    const caughtRid = new Promise((r) => (caught = r));
    if (input.inflight) {
        await pa.route(boshPattern, async (route) => {
            if (armed && trapped === null) {
                trapped = route;
                caught(attr(route.request().postData() || '', 'rid'));
                return;
            }
            await route.continue();
        });
    }

    const a = await stropheLogin(input, pa, input.users.alice, 'keepalive-a', { keepalive: true });
    const b = await stropheLogin(input, pb, input.users.bob, 'keepalive-b');
    const send = (from, i) => from.evaluate(([to, body]) => window.chat.send(to, body), [from === pb ? a.jid : b.jid, `${from === pb ? 'b2a' : 'a2b'}-${i}`]);

    // Before the reload: a conversation, fully delivered.
    let bobSent = 0;
    let aliceSent = 0;
    const before = 20;
    for (; bobSent < before; bobSent++, aliceSent++) {
        await send(pb, bobSent);
        await send(pa, aliceSent);
    }
    await waitAlice(bobSent);
    await pb.waitForFunction((n) => window.chat.received.filter((m) => m.body?.startsWith('a2b-')).length >= n, aliceSent);

    if (input.inflight) {
        armed = true;
        await send(pb, bobSent++);
        log(`alice: request rid ${await caughtRid} kept in the browser`);
        await waitAlice(bobSent);
    }

    // The bodies of the old page's responses cannot be read once it is
    // gone.
    await Promise.all(pa.bodyReads);
    const cached = await pa.evaluate(() => window.chat.cachedSession());
    check(cached && cached.sid === a.sid, `no keepalive session cached: ${JSON.stringify(cached)}`);
    log(`alice: cached session ${JSON.stringify(cached)}, last rid sent ${Math.max(...pa.boshRequests.map((r) => Number(r.rid)))}`);

    // Hold the new page's Strophe script until bob has sent the messages
    // of "during the reload": when its request is seen, the old page has
    // been unloaded (its held request aborted) and the new one cannot
    // have restored yet.
    let release;
    const released = new Promise((r) => (release = r));
    let committed;
    const newPageLoading = new Promise((r) => (committed = r));
    await pa.route('**/strophe.umd.min.js', async (route) => {
        committed();
        await released;
        await route.continue();
    });
    const reload = pa.reload({ waitUntil: 'load' });
    await newPageLoading;
    log('alice: old page unloaded, new page waiting for Strophe.js');
    if (trapped) {
        await trapped.abort('aborted').catch(() => {});
    }
    if (!input.inflight && input.controlURL) {
        // The old page's poll, held by boshd, dies with it, but the
        // browser may close its connection only after the new page has
        // asked for its first file: a message boshd answered it with
        // before it saw that would be lost with the old page (BOSH
        // without acks cannot tell). Wait until boshd has seen it go.
        const heldRid = Math.max(...pa.boshRequests.map((r) => Number(r.rid)));
        const seen = await control(input, `abandoned?sid=${encodeURIComponent(a.sid)}&rid=${heldRid}`);
        log(`alice: the old page's held poll (rid ${heldRid}) ${seen.abandoned ? 'abandoned at boshd' : 'not seen abandoned within the bound'}`);
    }

    const during = 20;
    for (let i = 0; i < during; i++) {
        await send(pb, bobSent++);
    }
    await pb.evaluate(() => window.chat.ping()); // the server has them all
    log(`bob: sent ${during} messages during the reload`);
    // Every request seen so far is the old page's: the new one cannot
    // send before Strophe.js, held above, is released. The old page may
    // have sent one more poll after the snapshot of its cache, and the
    // browser reports it (if at all) before the new page asked for its
    // script.
    const oldRequests = pa.boshRequests.length;
    const lastOldRid = Math.max(...pa.boshRequests.map((r) => Number(r.rid)));
    release();
    await reload;
    await pa.unroute('**/strophe.umd.min.js');
    if (input.inflight) {
        await pa.unroute(boshPattern);
    }

    // What the old page cached last: Strophe may have sent one more
    // poll after the snapshot above, as its idle loop answers a response
    // within 100 ms, and the browser may not report a request the page
    // sent while it was being unloaded.
    const cachedAtRestore = await pa.evaluate(() => window.chat.cachedSession());
    check(cachedAtRestore && cachedAtRestore.sid === a.sid, `no keepalive session cached after the reload: ${JSON.stringify(cachedAtRestore)}`);
    const restored = await pa.evaluate((o) => window.chat.restore(o), { jid: a.jid, wait: input.wait });
    log(`alice: restored ${JSON.stringify(restored)}`);
    await waitAlice(bobSent);
    const firstNew = pa.boshRequests[oldRequests];
    check(firstNew, 'the restored page sent no BOSH request');

    // After the reload: both directions still work. Alice sends what she
    // could not send during the reload, then both more.
    for (let i = 0; i < during; i++) {
        await send(pa, aliceSent++);
    }
    const after = 10;
    for (let i = 0; i < after; i++) {
        await send(pb, bobSent++);
        await send(pa, aliceSent++);
    }
    await pb.evaluate(([to]) => window.chat.send(to, 'b2a-end'), [a.jid]);
    await pa.evaluate(([to]) => window.chat.send(to, 'a2b-end'), [b.jid]);
    await waitAlice(bobSent + 1);
    const atBob = await waitBodies(input, pb, 'a2b', aliceSent);
    const aliceBodies = atAlice.map((m) => m.body).filter((x) => x?.startsWith('b2a-'));
    const result = {
        sid: a.sid,
        cachedRid: Number(cached.rid),
        cachedAtRestoreRid: Number(cachedAtRestore.rid),
        lastOldRid,
        firstNewRid: Number(firstNew.rid),
        firstNewSid: firstNew.sid,
        restoredSid: restored.sid,
        bobToAlice: bobSent,
        aliceToBob: aliceSent,
        handledOutOfOrder: (await checkDelivery(pa, aliceBodies, 'b2a', bobSent)) + (await checkDelivery(pb, atBob, 'a2b', aliceSent)),
        duringReload: during,
        sids: [a.sid, b.sid],
    };
    check(result.firstNewSid === a.sid, `restored page used sid ${result.firstNewSid}, want ${a.sid}`);
    // The restored page goes on from the rid its predecessor cached, which
    // is past every rid the old page was seen to send: none is reused.
    check(result.firstNewRid === Number(cachedAtRestore.rid), `restored page's first rid is ${result.firstNewRid}, want ${cachedAtRestore.rid} (the rid cached)`);
    check(result.firstNewRid > lastOldRid && result.firstNewRid <= lastOldRid + 2, `restored page's first rid is ${result.firstNewRid}, want the next rid after ${lastOldRid} (or one more if the old page sent a poll while unloading)`);
    await Promise.all([pa.evaluate(() => window.chat.logout()), pb.evaluate(() => window.chat.logout())]);
    return result;
}

// (c) network trouble: some requests of both pages are aborted before they
// reach boshd, and the responses of others are lost after boshd answered
// them; Strophe resends the same rid each time. The session survives and
// every message arrives exactly once, in order.
async function stropheNetwork(input, s) {
    // Strophe reports each failed request; that is the point here.
    s.quietConsole = /request id .* error 0 happened|request errored, status: 0|ERR_CONNECTION_RESET|ERR_FAILED/;
    await s.launch();
    const pa = await s.page('alice');
    const pb = await s.page('bob');

    // The routes are in place before login and fault nothing until the
    // sessions are up: a request already in flight when a route is added
    // may have its response go unreported to the scenario, which then
    // cannot check what it carried.
    const faults = { requestsDropped: 0, responsesLost: 0, resends: 0, seen: 0 };
    let faulting = false;
    const unresent = new Set(); // faulted page:rid not resent yet
    const resent = new Set();
    const waiters = new Set();
    for (const page of [pa, pb]) {
        let count = 0;
        await page.route('**' + (input.boshPath || '/http-bind'), async (route) => {
            try {
                const body = route.request().postData() || '';
                const rid = attr(body, 'rid');
                const key = page.name + ':' + rid;
                faults.seen++;
                if (unresent.has(key) || resent.has(key)) {
                    faults.resends++;
                    unresent.delete(key);
                    resent.add(key);
                    waiters.forEach((w) => w());
                    return await route.continue();
                }
                if (!faulting || attr(body, 'type') === 'terminate') {
                    return await route.continue();
                }
                count++;
                if (count % 5 === 1 || count % 5 === 3 || count % 5 === 0) {
                    return await route.continue();
                }
                unresent.add(key);
                if (count % 5 === 2) {
                    // The request never reaches boshd.
                    faults.requestsDropped++;
                    return await route.abort('connectionreset');
                }
                // boshd answers, but the answer never reaches the page.
                faults.responsesLost++;
                await route.fetch({ timeout: (input.wait + 20) * 1000 });
                return await route.abort('connectionreset');
            } catch (e) {
                log(`${page.name}: route: ${e.message}`);
            }
        });
    }
    const [a, b] = await Promise.all([
        stropheLogin(input, pa, input.users.alice, 'network-a'),
        stropheLogin(input, pb, input.users.bob, 'network-b'),
    ]);
    faulting = true;

    const result = { ...(await exchange(input, pa, pb, a, b)), ...faults };
    // Stop the trouble, get the held polls answered (a ping's result
    // comes on them), and wait until every faulted rid has been resent.
    faulting = false;
    await Promise.all([pa.evaluate(() => window.chat.ping()), pb.evaluate(() => window.chat.ping())]);
    await until(waiters, () => unresent.size === 0, input.timeoutMs, () => `faulted requests never resent: ${[...unresent]}`);
    result.faultedResent = resent.size;
    // Both sessions are still the ones created at login.
    for (const page of [pa, pb]) {
        const sids = new Set(page.boshRequests.filter((r) => r.sid).map((r) => r.sid));
        check(sids.size === 1, `${page.name} used sids ${[...sids]}`);
    }
    log(`network trouble: ${JSON.stringify(faults)}`);
    await Promise.all([pa.unroute('**' + (input.boshPath || '/http-bind')), pb.unroute('**' + (input.boshPath || '/http-bind'))]);
    await Promise.all([pa.evaluate(() => window.chat.logout()), pb.evaluate(() => window.chat.logout())]);
    return result;
}

// --- Converse.js ----------------------------------------------------------

// converseLogin logs user in with Converse's login form on the page at url
// and waits for the roster.
async function converseLogin(input, page, user, url) {
    await page.goto(url);
    await page.locator('#converse-login-jid').fill(user.jid);
    await page.locator('#converse-login-password').fill(user.password);
    await page.locator('#converse-login button[type=submit]').click();
    await page.locator('converse-roster').first().waitFor({ state: 'visible' });
    log(`${page.name}: logged in to Converse as ${user.jid}`);
}

// contact returns the roster entry of the contact named exactly name.
function contact(page, name) {
    return page.locator(`a.open-chat:has(.contact-name:text-is(${JSON.stringify(name)}))`).first();
}

// converseOpenChat opens the chat with the roster contact named name.
// Converse.js re-renders the roster as presence and roster pushes come in
// after login, and a click on an entry that is being replaced is lost (the
// chat never opened once in CI, the session itself healthy): the click is
// repeated until the chat's textarea shows, within the usual minute.
async function converseOpenChat(page, name) {
    const textarea = page.locator('converse-chat textarea.chat-textarea').first();
    const deadline = Date.now() + 60000;
    for (let attempt = 1; ; attempt++) {
        await contact(page, name).click({ timeout: Math.max(1000, deadline - Date.now()) });
        try {
            await textarea.waitFor({ state: 'visible', timeout: 5000 });
            return;
        } catch (err) {
            if (Date.now() + 5000 > deadline) {
                throw err;
            }
            log(`${page.name}: the chat with ${name} did not open after click ${attempt}; clicking again`);
        }
    }
}

async function converseSend(page, text) {
    const textarea = page.locator('converse-chat textarea.chat-textarea').first();
    await textarea.fill(text);
    await textarea.press('Enter');
}

async function converseWaitFor(page, text) {
    await page.locator('converse-chat .chat-msg__text', { hasText: text }).first().waitFor({ state: 'visible' });
}

// converseRoundTrip logs alice and bob in on the pages at urlA and urlB,
// opens their chat, and sends a message each way. It returns the two pages.
async function converseRoundTrip(input, s, urlA, urlB, texts) {
    await s.launch(input.forwardedFor ? { extraHTTPHeaders: { 'X-Forwarded-For': input.forwardedFor } } : {});
    const pa = await s.page('alice');
    const pb = await s.page('bob', await s.isolatedContext(input.forwardedFor ? { extraHTTPHeaders: { 'X-Forwarded-For': input.forwardedFor } } : {}));
    await Promise.all([converseLogin(input, pa, input.users.alice, urlA), converseLogin(input, pb, input.users.bob, urlB)]);
    await Promise.all([converseOpenChat(pa, input.users.bob.name), converseOpenChat(pb, input.users.alice.name)]);
    const t0 = Date.now();
    await converseSend(pa, texts[0]);
    await converseWaitFor(pb, texts[0]);
    log(`bob sees alice's message after ${Date.now() - t0} ms`);
    const t1 = Date.now();
    await converseSend(pb, texts[1]);
    await converseWaitFor(pa, texts[1]);
    log(`alice sees bob's reply after ${Date.now() - t1} ms`);
    return [pa, pb];
}

// (d) Converse.js with bosh_service_url: a message from alice's page
// appears in bob's page, and the reply in alice's.
async function converseMessage(input, s) {
    const stamp = Date.now().toString(36);
    const texts = [`Hello Bob, this is Alice (${stamp})`, `Hi Alice, Bob here (${stamp})`];
    const url = input.baseURL + (input.pagePath || '/converse.html');
    const [pa, pb] = await converseRoundTrip(input, s, url, url, texts);
    check(pa.errors.length === 0 && pb.errors.length === 0, `page errors: ${[...pa.errors, ...pb.errors].join('; ')}`);
    return {
        texts,
        boshURLs: [...new Set([...pa.boshRequests, ...pb.boshRequests].map((r) => r.url))],
        requests: pa.boshRequests.length + pb.boshRequests.length,
    };
}

// (4) Converse.js with discover_connection_methods and no BOSH URL: it
// fetches https://DOMAIN/.well-known/host-meta (the test maps the domain's
// port 443 to boshd's TLS listener), finds boshd's BOSH URL there, and logs
// in through it.
async function converseDiscovery(input, s) {
    await s.launch();
    const pa = await s.page('alice');
    const hostMeta = [];
    pa.on('response', async (resp) => {
        if (resp.url().includes('/.well-known/host-meta')) {
            hostMeta.push({ url: resp.url(), status: resp.status(), acao: (await resp.allHeaders())['access-control-allow-origin'] });
        }
    });
    await converseLogin(input, pa, input.users.alice, input.baseURL + '/converse.html?discover=1');
    await contact(pa, input.users.bob.name).waitFor({ state: 'visible' });
    const urls = [...new Set(pa.boshRequests.map((r) => r.url))];
    check(hostMeta.length > 0, 'Converse did not fetch host-meta');
    check(urls.length === 1 && urls[0] === input.expectBoshURL, `BOSH requests went to ${urls}, want ${input.expectBoshURL}`);
    return { hostMeta, boshURLs: urls, requests: pa.boshRequests.length };
}

// --- Single sign-on (pre-binding, issue 19) ---------------------------------

// loginFormShown reports whether page shows Converse's login form.
async function loginFormShown(page) {
    return (await page.locator('#converse-login-jid').count()) > 0;
}

// sidsOf returns the BOSH sids of page's requests from index from on.
function sidsOf(page, from = 0) {
    return [...new Set(page.boshRequests.slice(from).map((r) => r.sid).filter((sid) => sid))];
}

// Converse.js with authentication 'prebind' and auto_login: alice's page
// opens straight into her roster through the test's backend
// (input.prebindPath?user=alice, her prebind_url), with no login form;
// she and bob (who logs in with the form) chat both ways. After a reload
// her page is in again without a login form, by restoring the BOSH
// session or by pre-binding anew, and the chat goes on.
async function conversePrebind(input, s) {
    const stamp = Date.now().toString(36);
    const texts = ['before', 'reply', 'after reload', 'reply after reload'].map((t) => `${t} (${stamp})`);
    await s.launch();
    const pa = await s.page('alice');
    const pb = await s.page('bob', await s.isolatedContext());
    const url = `${input.baseURL}/converse.html?prebind=${encodeURIComponent(input.prebindPath + '?user=alice')}`;
    await Promise.all([pa.goto(url), converseLogin(input, pb, input.users.bob, input.baseURL + '/converse.html')]);
    await contact(pa, input.users.bob.name).waitFor({ state: 'visible' });
    check(!(await loginFormShown(pa)), "alice's pre-bound page shows a login form");
    const jid = await pa.evaluate(() => window.converseApi.user.jid());
    log(`alice: in as ${jid} without a login form`);
    await Promise.all([converseOpenChat(pa, input.users.bob.name), converseOpenChat(pb, input.users.alice.name)]);
    await converseSend(pa, texts[0]);
    await converseWaitFor(pb, texts[0]);
    await converseSend(pb, texts[1]);
    await converseWaitFor(pa, texts[1]);
    const sidsBefore = sidsOf(pa);

    const from = pa.boshRequests.length;
    await pa.reload();
    await contact(pa, input.users.bob.name).waitFor({ state: 'visible' });
    check(!(await loginFormShown(pa)), "alice's page shows a login form after the reload");
    const textarea = pa.locator('converse-chat textarea.chat-textarea').first();
    if (!(await textarea.isVisible())) {
        await converseOpenChat(pa, input.users.bob.name);
    }
    await converseSend(pb, texts[2]);
    await converseWaitFor(pa, texts[2]);
    await converseSend(pa, texts[3]);
    await converseWaitFor(pb, texts[3]);
    const sidsAfter = sidsOf(pa, from);
    log(`alice's sids: ${sidsBefore} before the reload, ${sidsAfter} after`);
    check(pa.errors.length === 0 && pb.errors.length === 0, `page errors: ${[...pa.errors, ...pb.errors].join('; ')}`);
    await Promise.all([pa.evaluate(() => window.converseApi.user.logout()), pb.evaluate(() => window.converseApi.user.logout())]);
    return { jid, texts, sidsBefore, sidsAfter, requests: pa.boshRequests.length };
}

// Strophe.js attach(): alice's page fetches a pre-bound session from the
// test's backend and attaches to it; bob, logged in with Strophe, wrote
// to her full JID before she attached, and they exchange a message each
// way after.
async function stropheAttach(input, s) {
    const stamp = Date.now().toString(36);
    await s.launch();
    const pa = await s.page('alice');
    const pb = await s.page('bob', await s.isolatedContext());
    const bob = await stropheLogin(input, pb, input.users.bob, 'web');
    await pa.goto(input.baseURL + '/strophe.html');
    const pre = await pa.evaluate(async (path) => {
        const resp = await fetch(path);
        return { status: resp.status, ...(await resp.json()) };
    }, input.prebindPath + '?user=alice');
    check(pre.status === 200 && typeof pre.rid === 'string' && typeof pre.sid === 'string', `prebind_url answered ${JSON.stringify(pre)}`);
    log(`alice: pre-bound ${pre.jid}, sid ${pre.sid}, rid ${pre.rid}`);

    const early = `early (${stamp})`;
    await pb.evaluate(([to, body]) => window.chat.send(to, body), [pre.jid, early]);
    await pb.evaluate(() => window.chat.ping()); // the server has routed it
    const attached = await pa.evaluate((o) => window.chat.attach(o), { jid: pre.jid, sid: pre.sid, rid: pre.rid, wait: input.wait });
    const hello = `hello from the attached page (${stamp})`;
    await pa.evaluate(([to, body]) => window.chat.send(to, body), [bob.jid, hello]);
    await pa.waitForFunction((t) => window.chat.received.some((m) => m.body === t), early, { polling: 50 });
    await pb.waitForFunction((t) => window.chat.received.some((m) => m.body === t), hello, { polling: 50 });
    const reply = `reply to the attached page (${stamp})`;
    await pb.evaluate(([to, body]) => window.chat.send(to, body), [pre.jid, reply]);
    await pa.waitForFunction((t) => window.chat.received.some((m) => m.body === t), reply, { polling: 50 });
    const firstRid = pa.boshRequests.length > 0 ? pa.boshRequests[0].rid : null;
    await Promise.all([pa.evaluate(() => window.chat.logout()), pb.evaluate(() => window.chat.logout())]);
    return { jid: pre.jid, sid: pre.sid, rid: pre.rid, attachedSid: attached.sid, firstRid, firstSid: pa.boshRequests[0]?.sid ?? null };
}

// --- StanzaJS -------------------------------------------------------------

async function buildStanza(input) {
    const esbuild = await import('esbuild');
    mkdirSync(input.buildDir, { recursive: true });
    const t0 = Date.now();
    await esbuild.build({
        entryPoints: [join(here, 'stanza-entry.js')],
        bundle: true,
        format: 'iife',
        platform: 'browser',
        target: 'es2020',
        define: { global: 'window' },
        outfile: join(input.buildDir, 'stanza.js'),
        logLevel: 'warning',
    });
    log(`bundled StanzaJS in ${Date.now() - t0} ms`);
}

// (e) StanzaJS over BOSH (no WebSocket): two users log in and exchange a
// message each way.
async function stanzaMessage(input, s) {
    await buildStanza(input);
    await s.launch();
    const pa = await s.page('alice');
    const pb = await s.page('bob');
    const login = async (page, user, resource) => {
        await page.goto(input.baseURL + '/stanza.html');
        const res = await page.evaluate((o) => window.chat.login(o), { jid: user.jid, password: user.password, resource, service: boshURL(input) });
        log(`${page.name}: StanzaJS session started as ${res.jid}`);
        return res;
    };
    const [a, b] = await Promise.all([login(pa, input.users.alice, 'stanza-a'), login(pb, input.users.bob, 'stanza-b')]);
    const waitBody = (page, body) => page.waitForFunction((x) => window.chat.received.some((m) => m.body === x), body, { polling: 50 });
    await pa.evaluate(([to]) => window.chat.send(to, 'stanza a2b'), [b.jid]);
    await waitBody(pb, 'stanza a2b');
    await pb.evaluate(([to]) => window.chat.send(to, 'stanza b2a'), [a.jid]);
    await waitBody(pa, 'stanza b2a');
    const counts = await Promise.all([pa, pb].map((p) => p.evaluate(() => window.chat.received.length)));
    check(counts[0] === 1 && counts[1] === 1, `received ${counts}, want one message each`);
    check(pa.boshRequests.length > 0 && pb.boshRequests.length > 0, 'StanzaJS made no BOSH requests');
    await Promise.all([pa.evaluate(() => window.chat.logout()), pb.evaluate(() => window.chat.logout())]);
    return { jids: [a.jid, b.jid], requests: pa.boshRequests.length + pb.boshRequests.length };
}

// --- XMPP over WebSocket --------------------------------------------------

// Pages driven through window.chat (strophe.html, stanza.html,
// xmppjs.html): log in over input.wsURL, read the roster, send, log out.
function chatClient(pagePath, loginOptions) {
    return {
        async login(input, page, user, resource) {
            await page.goto(input.baseURL + pagePath);
            const res = await page.evaluate((o) => window.chat.login(o), { ...loginOptions(input, user, resource), password: user.password });
            log(`${page.name}: logged in as ${res.jid}`);
            return res;
        },
        roster: (page) => page.evaluate(() => window.chat.roster()),
        send: (page, to, text) => page.evaluate(([to, text]) => window.chat.send(to, text), [to.jid, text]),
        waitFor: (page, text) => page.waitForFunction((x) => window.chat.received.some((m) => m.body === x), text, { polling: 50 }),
        received: (page) => page.evaluate(() => window.chat.received.map((m) => m.body)),
        logout: (page) => page.evaluate(() => window.chat.logout()),
    };
}

// Converse.js, through its own UI; window.converseApi for the rest.
const converseClient = {
    async login(input, page, user) {
        const q = new URLSearchParams({ ws: input.wsURL, bosh: input.boshFallback ? boshURL(input) : 'none' });
        if (input.boshFallback) {
            q.set('reconnect', '1');
        }
        if (input.converseLogLevel) {
            q.set('loglevel', input.converseLogLevel);
        }
        await converseLogin(input, page, user, `${input.baseURL}/converse.html?${q}`);
        return { jid: user.jid };
    },
    async roster(page) {
        await contact(page, page.peer.name).waitFor({ state: 'visible' });
        return page.evaluate(async () => (await window.converseApi.contacts.get()).map((c) => c.get('jid')));
    },
    async send(page, to, text) {
        if (!page.chatOpen) {
            await converseOpenChat(page, to.name);
            page.chatOpen = true;
        }
        await converseSend(page, text);
    },
    async waitFor(page, text) {
        if (!page.chatOpen) {
            await converseOpenChat(page, page.peer.name);
            page.chatOpen = true;
        }
        await converseWaitFor(page, text);
    },
    received: (page) => page.locator('converse-chat .chat-msg__text').allTextContents(),
    logout: (page) => page.evaluate(() => window.converseApi.user.logout()),
};

const wsClients = {
    strophe: chatClient('/strophe.html', (input, user, resource) => ({ jid: `${user.jid}/${resource}`, service: input.wsURL })),
    stanza: chatClient('/stanza.html', (input, user, resource) => ({ jid: user.jid, resource, websocket: input.wsURL })),
    xmppjs: chatClient('/xmppjs.html', (input, user, resource) => ({ jid: user.jid, resource, service: input.wsURL })),
    converse: converseClient,
};

// wsSummary returns what the browser saw of page's WebSockets: for each,
// its URL, subprotocol, close code and reason, whether the client sent a
// <close/> and what <close/> frames the server sent.
async function wsSummary(page) {
    const inPage = await page.evaluate(() => window.wsLog || []);
    return page.websockets.map((w, i) => ({
        url: w.url,
        protocol: inPage[i]?.protocol ?? null,
        close: inPage[i]?.close ?? null,
        closed: w.closed,
        framesIn: w.received.length,
        framesOut: w.sent.length,
        clientClose: w.sent.some((f) => f.startsWith('<close')),
        serverCloses: w.received.filter((f) => /^\s*<close[\s/>]/.test(f)),
        streamErrors: w.received.filter((f) => f.includes('<stream:error') || f.includes(':error xmlns:stream')),
    }));
}

// waitWS resolves once cond() holds, checked on every WebSocket frame or
// close of page.
function waitWS(input, page, cond, describe) {
    return until(page.wsWaiters, cond, input.timeoutMs, describe);
}

// checkCleanLogout checks that every WebSocket of page was closed at
// logout as RFC 7395 §3.6 says: the client sent <close/>, the socket is
// closed, no stream error came. The Go test checks the server's
// <close/> and the close codes (a reference server may differ in form).
function checkCleanLogout(page, summary) {
    for (const w of summary) {
        check(w.closed, `${page.name}: WebSocket ${w.url} still open after logout`);
        check(w.streamErrors.length === 0, `${page.name}: stream errors ${w.streamErrors}`);
    }
    const last = summary[summary.length - 1];
    check(last && last.clientClose, `${page.name}: the client sent no <close/> on its last WebSocket`);
}

// checkFallback checks that page tried input.wsURL, was refused (the
// socket never opened), and then spoke BOSH only.
function checkFallback(input, page, summary) {
    check(summary.length > 0, `${page.name}: Converse.js never tried ${input.wsURL}`);
    for (const w of summary) {
        check(w.url === input.wsURL && w.framesOut === 0 && w.protocol === null, `${page.name}: WebSocket ${JSON.stringify(w)} was not refused`);
    }
    check(page.boshRequests.length > 0, `${page.name}: no BOSH request after the WebSocket failed`);
}

// (9) One WebSocket client (input.client) in two pages: alice and bob log
// in over input.wsURL, each finds the other in the roster, a message goes
// each way, and both log out cleanly.
async function wsChat(input, s) {
    const client = wsClients[input.client];
    check(client, `unknown client ${input.client}; known: ${Object.keys(wsClients)}`);
    if (input.client === 'stanza') {
        await buildStanza(input);
    }
    await s.launch(input.forwardedFor ? { extraHTTPHeaders: { 'X-Forwarded-For': input.forwardedFor } } : {});
    const pa = await s.page('alice');
    const pb = await s.page('bob', await s.isolatedContext(input.forwardedFor ? { extraHTTPHeaders: { 'X-Forwarded-For': input.forwardedFor } } : {}));
    const { alice, bob } = input.users;
    pa.peer = bob;
    pb.peer = alice;
    const [a, b] = await Promise.all([client.login(input, pa, alice, `${input.client}-a`), client.login(input, pb, bob, `${input.client}-b`)]);
    const [ra, rb] = await Promise.all([client.roster(pa), client.roster(pb)]);
    check(ra.includes(bob.jid), `alice's roster ${JSON.stringify(ra)} lacks ${bob.jid}`);
    check(rb.includes(alice.jid), `bob's roster ${JSON.stringify(rb)} lacks ${alice.jid}`);

    const stamp = Date.now().toString(36);
    const texts = [`${input.client} alice to bob ${stamp}`, `${input.client} bob to alice ${stamp}`];
    const t0 = Date.now();
    await client.send(pa, { ...bob, jid: b.jid.split('/')[0] }, texts[0]);
    await client.waitFor(pb, texts[0]);
    const t1 = Date.now();
    await client.send(pb, { ...alice, jid: a.jid.split('/')[0] }, texts[1]);
    await client.waitFor(pa, texts[1]);
    log(`${input.client}: alice to bob in ${t1 - t0} ms, bob to alice in ${Date.now() - t1} ms`);
    const [ga, gb] = await Promise.all([client.received(pa), client.received(pb)]);
    check(gb.filter((x) => x === texts[0]).length === 1, `bob received ${JSON.stringify(gb)}, want ${texts[0]} once`);
    check(ga.filter((x) => x === texts[1]).length === 1, `alice received ${JSON.stringify(ga)}, want ${texts[1]} once`);

    // Strophe.js closes its socket as soon as it has sent <close/>, so
    // that it never reads the server's: bob's page instead has the server
    // answer a <close/> while Strophe listens (closeStream), where it
    // logs an unexpected close unless that answer is exactly
    // <close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />.
    const logoutB = input.client === 'strophe' ? pb.evaluate(() => window.chat.closeStream()) : client.logout(pb);
    await Promise.all([client.logout(pa), logoutB]);
    // The last frames: the server's <close/> and the socket's close.
    const settled = (p) => p.websockets.length > 0 && p.websockets.every((w) => w.closed);
    await Promise.all([pa, pb].map((p) => waitWS(input, p, () => settled(p), () => `${p.name}: WebSockets still open after logout: ${p.websockets.filter((w) => !w.closed).map((w) => w.url)}`)));
    const sockets = { alice: await wsSummary(pa), bob: await wsSummary(pb) };
    for (const page of [pa, pb]) {
        if (input.boshFallback) {
            checkFallback(input, page, sockets[page.name]);
        } else {
            checkCleanLogout(page, sockets[page.name]);
        }
        check(page.errors.length === 0, `${page.name}: page errors: ${page.errors.join('; ')}`);
    }
    const unexpected = [...pa.consoleErrors, ...pb.consoleErrors].filter((m) => /unexpected|unexcectedly|Websocket error|stream error/i.test(m));
    return {
        client: input.client,
        texts,
        jids: [a.jid, b.jid],
        sockets,
        wsURLs: [...new Set([...pa.websockets, ...pb.websockets].map((w) => w.url))],
        boshURLs: [...new Set([...pa.boshRequests, ...pb.boshRequests].map((r) => r.url))],
        unexpected,
    };
}

// (9.3) Converse.js given both websocket_url and bosh_service_url, where
// the WebSocket endpoint refuses the upgrade: it logs in over BOSH
// instead, and a message goes each way.
//
// Converse.js 14.0.0 does not: after the failed WebSocket its reconnect()
// starts switchTransport() without awaiting it, and logs in again over
// the WebSocket, over and over. So when no page made a BOSH request
// before the login timed out, the result is fellBack: false with what
// the pages tried, for the Go test to tell apart from boshd's failures.
async function wsFallback(input, s) {
    const fallback = { ...input, client: 'converse', boshFallback: true };
    try {
        const res = await wsChat(fallback, s);
        check(res.boshURLs.length === 1 && res.boshURLs[0] === boshURL(input), `BOSH requests went to ${res.boshURLs}, want ${boshURL(input)}`);
        return { fellBack: true, ...res };
    } catch (e) {
        if (s.pages.some((p) => p.boshRequests.length > 0)) {
            throw e;
        }
        const attempts = await Promise.all(s.pages.map((p) => wsSummary(p)));
        log(`no page tried BOSH: ${e.message}`);
        return { fellBack: false, error: String(e.message || e), attempts: attempts.map((a) => a.length), sockets: attempts.flat().slice(0, 4) };
    }
}

// control asks the Go test to do something between two steps of a
// scenario (POST input.controlURL/what) and resolves with its JSON answer
// once done.
async function control(input, what) {
    const resp = await fetch(`${input.controlURL}/${what}`, { method: 'POST', signal: AbortSignal.timeout(input.timeoutMs) });
    const text = await resp.text();
    check(resp.ok, `control ${what}: ${resp.status} ${text}`);
    return JSON.parse(text || '{}');
}

// numbered returns the messages of texts that are prefix-N, as N.
function numbered(texts, prefix) {
    return texts.filter((t) => t.startsWith(prefix)).map((t) => Number(t.slice(prefix.length)));
}

// (16.4) Converse.js with enable_smacks over WebSocket, logged in as alice
// with bob's chat open. The Go test takes her connection away
// (POST /away: cuts the TCP connection, or restarts boshd) and has bob
// send input.count numbered messages meanwhile. Converse reconnects and
// resumes the stream (<resume/>, <resumed/>): alice has every message,
// once, in order, in the chat and on the wire.
async function converseResume(input, s) {
    await s.launch();
    const pa = await s.page('alice');
    const q = new URLSearchParams({ ws: input.wsURL, bosh: 'none', smacks: '1' });
    await converseLogin(input, pa, input.users.alice, `${input.baseURL}/converse.html?${q}`);
    await converseOpenChat(pa, input.users.bob.name);
    const frames = () => pa.websockets.flatMap((w) => w.received);
    await waitWS(input, pa, () => frames().some((f) => /^<enabled [^>]*resume=['"](true|1)['"]/.test(f)), () => 'stream management was never enabled with resumption');
    const first = pa.websockets.length;
    log(`alice: stream management enabled on ${pa.websockets[first - 1].url}`);

    const away = await control(input, 'away');
    log(`alice away: ${JSON.stringify(away)}`);
    const prefix = input.prefix;
    const want = [...Array(input.count).keys()];
    const loc = pa.locator('converse-chat .chat-msg__text');
    await pa.waitForFunction(([p, n]) => [...document.querySelectorAll('converse-chat .chat-msg__text')].filter((e) => e.textContent.startsWith(p)).length >= n, [prefix, input.count], { polling: 100 });
    await waitWS(input, pa, () => frames().some((f) => f.startsWith('<resumed ')), () => 'no <resumed/> after the reconnection');
    const shown = numbered(await loc.allTextContents(), prefix);
    const wire = numbered(
        frames().flatMap((f) => [...f.matchAll(/<body>([^<]*)<\/body>/g)].map((m) => m[1])),
        prefix,
    );
    check(JSON.stringify(shown) === JSON.stringify(want), `the chat shows ${JSON.stringify(shown)}, want ${JSON.stringify(want)}`);
    check(JSON.stringify(wire) === JSON.stringify(want), `the WebSockets carried ${JSON.stringify(wire)}, want ${JSON.stringify(want)}`);
    const sockets = await wsSummary(pa);
    const resumed = pa.websockets.slice(first);
    check(resumed.length >= 1, 'Converse.js opened no new WebSocket');
    check(resumed.some((w) => w.sent.some((f) => f.startsWith('<resume '))), 'Converse.js sent no <resume/>');
    // Resuming authenticates again, then sends <resume/> where a new
    // session would bind a resource.
    check(!resumed.some((w) => w.sent.some((f) => f.includes('urn:ietf:params:xml:ns:xmpp-bind'))), 'Converse.js bound a new resource instead of resuming');
    const transport = await pa.evaluate(() => (window.converseApi.connection.isType('websocket') ? 'websocket' : 'bosh'));
    await pa.evaluate(() => window.converseApi.user.logout());
    await waitWS(input, pa, () => pa.websockets.every((w) => w.closed), () => 'WebSockets still open after logout');
    return { away, shown, wire, transport, sockets: await wsSummary(pa), droppedSocket: sockets[first - 1] };
}

// --- Several nodes (issue 17) -----------------------------------------------

// Strophe.js and Converse.js over BOSH through input.serviceURL (HAProxy
// in front of several boshd nodes, on another origin than the pages).
const clusterClients = {
    strophe: {
        async login(input, page, user, resource) {
            await page.goto(input.baseURL + '/strophe.html');
            const res = await page.evaluate((o) => window.chat.login(o), { jid: `${user.jid}/${resource}`, password: user.password, wait: input.wait, service: input.serviceURL });
            log(`${page.name}: logged in as ${res.jid}, sid ${res.sid}`);
            return res.jid;
        },
        send: (page, to, text) => page.evaluate(([to, text]) => window.chat.send(to, text), [to, text]),
        waitFor: (page, text) => page.waitForFunction((x) => window.chat.received.some((m) => m.body === x), text, { polling: 50 }),
        received: (page, text) => page.evaluate((x) => window.chat.received.filter((m) => m.body === x).length, text),
        // Strophe.js does not reconnect by itself: the application
        // logs in again once it is told the session is gone.
        async reconnect(input, page, user, resource) {
            await page.waitForFunction(() => window.chat.statuses.some((s) => s.startsWith('DISCONNECTED')), null, { polling: 50 });
            return this.login(input, page, user, resource);
        },
        logout: (page) => page.evaluate(() => window.chat.logout()),
    },
    converse: {
        async login(input, page, user) {
            const q = new URLSearchParams({ bosh: input.serviceURL, reconnect: '1' });
            await converseLogin(input, page, user, `${input.baseURL}/converse.html?${q}`);
            await converseOpenChat(page, page.peer.name);
            return user.jid;
        },
        send: (page, to, text) => converseSend(page, text),
        waitFor: (page, text) => converseWaitFor(page, text),
        received: (page, text) => page.locator('converse-chat .chat-msg__text', { hasText: text }).count(),
        // Converse.js (auto_reconnect) logs in again by itself: a new
        // session, whose requests carry a sid not among before, the sids
        // seen before the kill (it may have reconnected already when
        // this is called).
        async reconnect(input, page, user, resource, before) {
            await until(page.boshWaiters, () => sidsOf(page).some((sid) => !before.has(sid)), input.timeoutMs, () => `${page.name}: no new BOSH session after the kill; sids ${sidsOf(page)}`);
            await page.waitForFunction(() => window.converseReconnected > 0, null, { polling: 100 });
            log(`${page.name}: Converse.js reconnected`);
            return page.peer.self;
        },
        logout: (page) => page.evaluate(() => window.converseApi.user.logout()),
    },
};

// lastSID returns the sid of page's last BOSH request that had one.
function lastSID(page) {
    const r = page.boshRequests.filter((r) => r.sid);
    return r.length ? r[r.length - 1].sid : null;
}

// (17.5) input.client logged in as alice, then bob, over BOSH through
// input.serviceURL, a message each way. The Go test kills (kill -9) the
// node holding alice's session (POST /control/kill?sid=SID). Alice's
// client must be answered item-not-found promptly, reconnect onto a live
// node with a new session, and a message goes each way again; bob's
// session, on another node, goes on untouched.
async function clusterBOSH(input, s) {
    const client = clusterClients[input.client];
    check(client, `unknown client ${input.client}; known: ${Object.keys(clusterClients)}`);
    // The killed node's requests fail on their way; that is the point.
    s.quietConsole = /ERR_CONNECTION|ERR_EMPTY_RESPONSE|status code 50[234]|item-not-found|ERR_FAILED/;
    await s.launch();
    const pa = await s.page('alice');
    const pb = await s.page('bob', await s.isolatedContext());
    const { alice, bob } = input.users;
    pa.peer = { ...bob, self: alice.jid };
    pb.peer = { ...alice, self: bob.jid };
    // One after the other, so that leastconn puts them on two nodes.
    let a = await client.login(input, pa, alice, `${input.client}-a`);
    const b = await client.login(input, pb, bob, `${input.client}-b`);
    const [sidA, sidB] = [lastSID(pa), lastSID(pb)];
    log(`alice's sid ${sidA}, bob's ${sidB}`);
    const round = async (tag) => {
        const texts = [`${input.client} ${tag} alice to bob`, `${input.client} ${tag} bob to alice`];
        await client.send(pa, b, texts[0]);
        await client.waitFor(pb, texts[0]);
        await client.send(pb, a, texts[1]);
        await client.waitFor(pa, texts[1]);
        check((await client.received(pb, texts[0])) === 1, `bob has ${texts[0]} more than once`);
        check((await client.received(pa, texts[1])) === 1, `alice has ${texts[1]} more than once`);
    };
    await round('before');

    const killedAt = Date.now() - started;
    const sidsBeforeKill = new Set(sidsOf(pa));
    const killed = await control(input, `kill?sid=${encodeURIComponent(sidA)}&other=${encodeURIComponent(sidB)}`);
    log(`killed: ${JSON.stringify(killed)}`);
    await until(pa.boshWaiters, () => pa.boshResponses.some((r) => r.at >= killedAt && r.condition === 'item-not-found'), input.timeoutMs, () => `alice got no item-not-found after the kill; last responses ${JSON.stringify(pa.boshResponses.slice(-5))}`);
    const notFound = pa.boshResponses.find((r) => r.at >= killedAt && r.condition === 'item-not-found');
    const a2 = await client.reconnect(input, pa, alice, `${input.client}-a2`, sidsBeforeKill);
    a = a2; // bob writes to alice's new JID (her new resource, with Strophe.js)
    const newSID = lastSID(pa);
    log(`alice reconnected with sid ${newSID}, item-not-found ${notFound.at - killedAt} ms after the kill was asked`);
    await round('after');
    check(lastSID(pb) === sidB, `bob's session changed: ${sidB} to ${lastSID(pb)}`);
    await Promise.all([client.logout(pa), client.logout(pb)]);
    return {
        client: input.client,
        sids: { alice: sidA, bob: sidB, aliceAfter: newSID },
        aliceSIDs: sidsOf(pa),
        bobSIDs: sidsOf(pb),
        killed,
        itemNotFoundMs: notFound.at - killedAt,
        reconnectedAs: a2,
        boshURLs: [...new Set([...pa.boshRequests, ...pb.boshRequests].map((r) => r.url))],
    };
}

// --- Live upgrades ----------------------------------------------------------

// upgradeSenders send a round's numbered messages with input.client and
// return the bodies the receiving page has of them, in the order it shows
// them, once the last has arrived.
const upgradeSenders = {
    strophe: {
        async round(input, from, to, toJID, prefix, n) {
            await from.evaluate(([to, p, n]) => window.chat.sendMany(to, p, n), [toJID, prefix, n]);
        },
        async received(input, page, prefix, n) {
            const bodies = await waitBodies(input, page, prefix, n);
            // Once each, and in rid order on the wire (the library may
            // hand two responses over in the other order, #709).
            await checkDelivery(page, bodies, prefix, n);
            return bodies;
        },
    },
    converse: {
        async round(input, from, to, toJID, prefix, n) {
            for (let i = 0; i < n; i++) {
                await converseSend(from, `${prefix}-${i}`);
            }
            await converseSend(from, `${prefix}-end`);
        },
        async received(input, page, prefix, n) {
            await converseWaitFor(page, `${prefix}-end`);
            const want = expected(prefix, n);
            await page
                .waitForFunction(
                    ([p, n]) => [...document.querySelectorAll('converse-chat .chat-msg__text')].filter((e) => e.textContent.trim().startsWith(p + '-')).length >= n + 1,
                    [prefix, n],
                    { timeout: Math.min(input.timeoutMs, 5000), polling: 50 },
                )
                .catch(() => {});
            const bodies = await page.evaluate((p) => [...document.querySelectorAll('converse-chat .chat-msg__text')].map((e) => e.textContent.trim()).filter((t) => t.startsWith(p + '-')), prefix);
            // Once each on screen. The order on the wire, boshd's to
            // keep across an upgrade, is checked by the Strophe.js runs
            // (checkDelivery) over the same upgrades; Converse.js sorts
            // what it shows by its own clock, and once showed 5-8 before
            // 0-4 of a round sent within a few milliseconds: logged here,
            // not failed.
            const misplaced = checkOnce(bodies, prefix, n);
            if (misplaced > 0) {
                log(`${page.name}: Converse.js shows ${misplaced} of the ${prefix} messages out of order: ${bodies.join(' ')}`);
            }
            return want;
        },
    },
};

// (18) input.client (strophe or converse) logged in as alice and bob over
// BOSH; input.upgrades times, the Go test upgrades boshd (POST
// /control/upgrade: SIGUSR2 to the newest process, answered once it has
// handed over) while input.messages numbered messages go each way. Every
// message arrives exactly once (and, with Strophe.js, in order on the
// wire: upgradeSenders); no BOSH request fails, is
// answered with an HTTP error or a terminate; each page keeps the one
// session it logged in with (no new login).
async function upgradeChat(input, s) {
    const client = clusterClients[input.client];
    const sender = upgradeSenders[input.client];
    check(client && sender, `unknown client ${input.client}; known: ${Object.keys(upgradeSenders)}`);
    await s.launch();
    const pa = await s.page('alice');
    const pb = await s.page('bob', await s.isolatedContext());
    const { alice, bob } = input.users;
    pa.peer = { ...bob, self: alice.jid };
    pb.peer = { ...alice, self: bob.jid };
    const [a, b] = await Promise.all([client.login(input, pa, alice, `${input.client}-a`), client.login(input, pb, bob, `${input.client}-b`)]);
    const n = input.messages;
    const upgrades = [];
    for (let round = 0; round < input.upgrades; round++) {
        const [ab, ba] = [`u${round}a2b`, `u${round}b2a`];
        // The upgrade starts while the messages are on their way.
        const sending = Promise.all([sender.round(input, pa, pb, b, ab, n), sender.round(input, pb, pa, a, ba, n)]);
        const upgraded = control(input, 'upgrade');
        await sending;
        upgrades.push(await upgraded);
        await Promise.all([sender.received(input, pb, ab, n), sender.received(input, pa, ba, n)]);
        log(`round ${round}: ${n + 1} messages each way across the upgrade to ${JSON.stringify(upgrades[round])}`);
    }
    // After the last upgrade too, with nothing on the way.
    await sender.round(input, pa, pb, b, 'after-a2b', n);
    await sender.received(input, pb, 'after-a2b', n);
    await Promise.all(pa.bodyReads.concat(pb.bodyReads));
    const failures = [...pa.boshFailures, ...pb.boshFailures];
    const bad = [...pa.boshResponses, ...pb.boshResponses].filter((r) => r.status !== 200 || r.condition);
    const result = {
        client: input.client,
        upgrades,
        sids: { alice: sidsOf(pa), bob: sidsOf(pb) },
        // Session creations: requests without a sid.
        creations: [pa, pb].map((p) => p.boshRequests.filter((r) => !r.sid).length),
        failures,
        bad,
        requests: pa.boshRequests.length + pb.boshRequests.length,
    };
    check(failures.length === 0, `BOSH requests failed: ${JSON.stringify(failures.slice(0, 5))}`);
    check(bad.length === 0, `BOSH answers with an HTTP error or a terminate: ${JSON.stringify(bad.slice(0, 5))}`);
    check(result.sids.alice.length === 1 && result.sids.bob.length === 1, `more than one session: ${JSON.stringify(result.sids)}`);
    check(result.creations.every((c) => c === 1), `session creations per page ${result.creations}, want one each`);
    check(pa.errors.length === 0 && pb.errors.length === 0, `page errors: ${[...pa.errors, ...pb.errors].join('; ')}`);
    await Promise.all([client.logout(pa), client.logout(pb)]);
    return result;
}

// (18.3) input.client (strophe or xmppjs, through window.chat) logged in
// as alice and bob over input.wsURL; input.upgrades times, the Go test
// upgrades boshd (POST /control/upgrade) while input.messages numbered
// messages go each way, and once more after the last. Over a plaintext
// upstream each WebSocket session moves to the new process on its own TCP
// connections: every message arrives once and in order, and each page
// keeps the one WebSocket it opened, never closed by the server and with
// no stream error, until it logs out.
async function wsUpgradeChat(input, s) {
    check(['strophe', 'xmppjs'].includes(input.client), `unknown client ${input.client}; known: strophe, xmppjs`);
    const client = wsClients[input.client];
    await s.launch();
    const pa = await s.page('alice');
    const pb = await s.page('bob', await s.isolatedContext());
    const { alice, bob } = input.users;
    pa.peer = bob;
    pb.peer = alice;
    await Promise.all([client.login(input, pa, alice, `${input.client}-a`), client.login(input, pb, bob, `${input.client}-b`)]);
    const n = input.messages;
    const sendRound = async (from, to, prefix) => {
        for (let i = 0; i < n; i++) {
            await client.send(from, { jid: to.jid }, `${prefix}-${i}`);
        }
        await client.send(from, { jid: to.jid }, `${prefix}-end`);
    };
    const receivedRound = async (ab, ba) => {
        checkSequence(await waitBodies(input, pb, ab, n), ab, n);
        checkSequence(await waitBodies(input, pa, ba, n), ba, n);
    };
    const upgrades = [];
    for (let round = 0; round < input.upgrades; round++) {
        const [ab, ba] = [`u${round}a2b`, `u${round}b2a`];
        // The upgrade starts while the messages are on their way.
        const sending = Promise.all([sendRound(pa, bob, ab), sendRound(pb, alice, ba)]);
        const upgraded = control(input, 'upgrade');
        await sending;
        upgrades.push(await upgraded);
        await receivedRound(ab, ba);
        log(`round ${round}: ${n + 1} messages each way across the upgrade to ${JSON.stringify(upgrades[round])}`);
    }
    await Promise.all([sendRound(pa, bob, 'after-a2b'), sendRound(pb, alice, 'after-b2a')]);
    await receivedRound('after-a2b', 'after-b2a');
    const before = { alice: await wsSummary(pa), bob: await wsSummary(pb) };
    for (const page of [pa, pb]) {
        const list = before[page.name];
        check(list.length === 1, `${page.name}: ${list.length} WebSockets, want the one it logged in on: ${JSON.stringify(list)}`);
        const w = list[0];
        check(!w.closed && w.close === null, `${page.name}: its WebSocket closed through the upgrades: ${JSON.stringify(w)}`);
        check(w.serverCloses.length === 0 && w.streamErrors.length === 0, `${page.name}: the server closed its stream: ${JSON.stringify(w)}`);
        check(page.errors.length === 0, `${page.name}: page errors: ${page.errors.join('; ')}`);
    }
    await Promise.all([client.logout(pa), client.logout(pb)]);
    return { client: input.client, upgrades, sockets: before };
}

// --- The demo page --------------------------------------------------------

// (5) The page scripts/demo serves, as a newcomer uses it: alice and bob
// log in with its form and chat. With input.screenshot, alice's view of
// the conversation is saved as a PNG for humans.
async function demo(input, s) {
    const stamp = new Date().toISOString().slice(11, 19);
    const texts = [`Hi Bob! Alice here, chatting through boshd (${stamp}).`, `Hello Alice, Bob here. It works! (${stamp})`];
    const [pa, pb] = await converseRoundTrip(input, s, input.baseURL, input.baseURL, texts);
    const result = {
        texts,
        url: input.baseURL,
        boshURLs: [...new Set([...pa.boshRequests, ...pb.boshRequests].map((r) => r.url))],
        wsURLs: [...new Set([...pa.websockets, ...pb.websockets].filter((w) => w.received.length > 0).map((w) => w.url))],
        // What the page's hint says it chose.
        transport: await pa.locator('#boshd-demo-transport').textContent(),
    };
    if (input.screenshot) {
        mkdirSync(input.outDir, { recursive: true });
        result.screenshot = join(input.outDir, 'demo-chat.png');
        await pa.screenshot({ path: result.screenshot, animations: 'disabled' });
        result.screenshotBob = join(input.outDir, 'demo-chat-bob.png');
        await pb.screenshot({ path: result.screenshotBob, animations: 'disabled' });
        // What a newcomer sees first.
        const fresh = await s.page('newcomer', await s.isolatedContext());
        await fresh.goto(input.baseURL);
        await fresh.locator('#converse-login-jid').waitFor({ state: 'visible' });
        result.screenshotLogin = join(input.outDir, 'demo-login.png');
        await fresh.locator('#converse-login button[type=submit]').waitFor({ state: 'visible' });
        await fresh.screenshot({ path: result.screenshotLogin, animations: 'disabled' });
    }
    return result;
}

const scenarios = {
    'strophe-exchange': stropheExchange,
    'strophe-keepalive': stropheKeepalive,
    'strophe-network': stropheNetwork,
    'converse-message': converseMessage,
    'converse-prebind': conversePrebind,
    'strophe-attach': stropheAttach,
    'converse-discovery': converseDiscovery,
    'stanza-message': stanzaMessage,
    'ws-chat': wsChat,
    'ws-fallback': wsFallback,
    'converse-resume': converseResume,
    'cluster-bosh': clusterBOSH,
    'upgrade-chat': upgradeChat,
    'ws-upgrade-chat': wsUpgradeChat,
    demo,
};

async function main() {
    const input = await readStdin();
    input.timeoutMs ||= 60000;
    input.wait ||= 60;
    input.messages ||= 100;
    const play = scenarios[input.scenario];
    if (!play) {
        throw new Error(`unknown scenario ${JSON.stringify(input.scenario)}; known: ${Object.keys(scenarios).join(', ')}`);
    }
    log(`scenario ${input.scenario} against ${input.baseURL}`);
    const s = new Session(input);
    try {
        const result = await play(input, s);
        return { ok: true, scenario: input.scenario, seconds: (Date.now() - started) / 1000, ...result };
    } catch (e) {
        log(`FAILED: ${e.stack || e}`);
        await s.dump();
        // Chromium going away before any page spoke BOSH is the
        // browser's trouble, not boshd's: nothing reached the server, so
        // the harness may run the scenario again.
        const closed = /Target page, context or browser has been closed|Browser closed|browser has disconnected/i.test(String(e.message || e));
        const quiet = s.pages.every((p) => (p.boshRequests || []).length === 0);
        return { ok: false, scenario: input.scenario, error: String(e.message || e), browserClosedBeforeTraffic: closed && quiet };
    } finally {
        await s.close();
    }
}

process.on('unhandledRejection', (e) => log('unhandled rejection:', e && e.stack ? e.stack : e));

main().then(
    (result) => {
        process.stdout.write(JSON.stringify(result) + '\n');
        process.exitCode = result.ok ? 0 : 1;
    },
    (e) => {
        process.stdout.write(JSON.stringify({ ok: false, error: String(e.stack || e) }) + '\n');
        process.exitCode = 1;
    },
);
