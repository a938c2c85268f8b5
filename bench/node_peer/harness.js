'use strict';
// Times the unmodified aws-lambda-ses-forwarder (the Node peer of othermail's benchmarks) on the
// messages it is given, and checks that what it forwards is not an error path.
//
//   node bench/node_peer/harness.js --peer DIR --alias ADDR --destination ADDR --rounds N \
//        [--min-batch-ms MS] [--serve] (--list FILE | FILE...)
//
// bench/_node_peer.py runs it (it installs the peer into bench/.cache/node_peer first). --peer is
// the installed package folder (.../node_modules/aws-lambda-ses-forwarder); --list names a file
// with one message path per line. One JSON object is printed on stdout; everything else (the
// peer's banner, its log lines) goes to stderr or nowhere. With --serve it keeps running and times
// one round per "round K" line read on stdin (see serve() below).
//
// What is timed, per message (the peer's "full path"): what the peer does with the bytes S3 hands
// it, without the network:
//   decode   Buffer -> string as fetchMessage() does (GetObject Body.transformToString(), which on
//            Node is Buffer#toString() with the default encoding, UTF-8);
//   process  the peer's own exports.processMessage(data) (the header rewrite), with the
//            configuration below and a log function that discards its line;
//   encode   string -> Buffer as sendMessage() does (Buffer.from(data.emailData)).
// Each message is calibrated first (a batch of calls lasts at least --min-batch-ms), then timed in
// --rounds rounds, messages interleaved and the order rotated each round; the per-message median
// of the per-call times is reported, in seconds.
//
// Checked once per message before timing (not timed): the whole handler chain, exports.handler
// with the peer's own `overrides` argument (config, log, s3, ses), runs on an SES event; the fake
// S3 client answers CopyObjectCommand and GetObjectCommand (the message bytes) and the fake SESv2
// client captures SendEmailCommand's Content.Raw.Data and calls back at once. A message is
// reported as rejected when the handler fails, when the captured bytes differ from the timed
// path's output, or when the forwarded header lacks the peer's From rewrite (From: ... <alias>)
// or a Reply-To.

const fs = require('fs');
const path = require('path');

function parseArgs(argv) {
  const opts = { files: [], rounds: 5, minBatchMs: 2 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--peer') opts.peer = value();
    else if (arg === '--alias') opts.alias = value();
    else if (arg === '--destination') opts.destination = value();
    else if (arg === '--rounds') opts.rounds = parseInt(value(), 10);
    else if (arg === '--min-batch-ms') opts.minBatchMs = parseFloat(value());
    else if (arg === '--serve') opts.serve = true;
    else if (arg === '--list') {
      const list = fs.readFileSync(value(), 'utf8').split('\n').filter((line) => line.length > 0);
      opts.files.push(...list);
    } else if (arg.startsWith('--')) throw new Error(`unknown option ${arg}`);
    else opts.files.push(arg);
  }
  if (!opts.peer || !opts.alias || !opts.destination) {
    throw new Error('--peer, --alias and --destination are required');
  }
  if (!(opts.rounds >= 1)) throw new Error('--rounds must be at least 1');
  return opts;
}

function loadPeer(dir) {
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  // index.js prints a banner with console.log when loaded: keep stdout for the JSON result.
  const log = console.log;
  console.log = (...args) => process.stderr.write(args.join(' ') + '\n');
  try {
    return { pkg, peer: require(path.resolve(dir, pkg.main || 'index.js')) };
  } finally {
    console.log = log;
  }
}

const discard = () => {};

function peerConfig(alias, destination) {
  // fromEmail empty: the peer writes From as "Name at sender <original recipient>" (the alias),
  // the branch docs/PEERS.md describes and the one closest to othermail's own From rewrite.
  return {
    fromEmail: '',
    subjectPrefix: '',
    emailBucket: 'othermail-bench',
    emailKeyPrefix: 'inbound/',
    allowPlusSign: true,
    forwardMapping: { [alias.toLowerCase()]: [destination] },
  };
}

// The timed full path for one message; returns the bytes the peer would hand SES.
function fullPath(peer, config, alias, raw) {
  const data = { config, log: discard, originalRecipient: alias, emailData: raw.toString() };
  peer.processMessage(data);
  return Buffer.from(data.emailData);
}

function sesEvent(messageId, alias) {
  return {
    Records: [
      {
        eventSource: 'aws:ses',
        eventVersion: '1.0',
        ses: {
          mail: { messageId, source: 'sender@example.net', destination: [alias] },
          receipt: { recipients: [alias] },
        },
      },
    ],
  };
}

// Runs exports.handler with fake S3 and SESv2 clients; resolves to { error, sent }.
function runHandler(peer, config, alias, raw, messageId) {
  return new Promise((resolve) => {
    const sent = [];
    const s3 = {
      send(command, callback) {
        const name = command && command.constructor && command.constructor.name;
        if (name === 'CopyObjectCommand') return callback(null, {});
        if (name === 'GetObjectCommand') {
          return callback(null, { Body: { transformToString: async (encoding) => raw.toString(encoding) } });
        }
        return callback(new Error(`fake S3: unexpected ${name}`));
      },
    };
    const ses = {
      send(command, callback) {
        sent.push(command.input);
        return callback(null, { MessageId: `fake-${messageId}` });
      },
    };
    let settled = false;
    const callback = (error) => {
      if (settled) return;
      settled = true;
      resolve({ error: error || null, sent });
    };
    try {
      peer.handler(sesEvent(messageId, alias), {}, callback, { config, log: discard, s3, ses });
    } catch (error) {
      callback(error);
    }
  });
}

function headerOf(text) {
  const cut = text.search(/\r?\n\r?\n/);
  return cut < 0 ? text : text.slice(0, cut + 1);
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

async function check(peer, config, alias, destination, raw, index) {
  const result = await runHandler(peer, config, alias, raw, `bench-${index}`);
  if (result.error) return `handler failed: ${result.error.message}`;
  if (result.sent.length !== 1) return `handler sent ${result.sent.length} messages, not 1`;
  const input = result.sent[0];
  const to = input.Destination && input.Destination.ToAddresses;
  if (!to || to.length !== 1 || to[0] !== destination) return `sent to ${JSON.stringify(to)}`;
  const sentBytes = Buffer.from(input.Content.Raw.Data);
  const timed = fullPath(peer, config, alias, raw);
  if (!sentBytes.equals(timed)) return 'the bytes sent differ from the timed path output';
  if (!/^from:/mi.test(headerOf(raw.toString()))) return 'no From header in the message (sent without one)';
  const header = headerOf(sentBytes.toString());
  // the peer keeps a folded From folded: "From: name\r\n at sender <alias>"
  const fromRewritten = new RegExp(`^From:[^\\r\\n]*(?:\\r?\\n[ \\t][^\\r\\n]*)*<${escapeRegExp(alias)}>\\r?$`, 'mi');
  if (!fromRewritten.test(header)) return 'no From rewrite in the forwarded header';
  if (!/^reply-to:/mi.test(header)) return 'no Reply-To in the forwarded header';
  return null;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function timeBatch(peer, config, alias, raw, calls) {
  let sink = 0;
  const start = process.hrtime.bigint();
  for (let k = 0; k < calls; k++) sink += fullPath(peer, config, alias, raw).length;
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  if (sink < 0) throw new Error('unreachable');
  return elapsed / calls;
}

// Calls per batch so that one batch lasts at least minBatch seconds: a few warm-up calls (the
// first call of a new input runs cold), then batches doubling until one lasts a quarter of it.
function calibrate(peer, config, alias, raw, minBatch) {
  for (let warm = 0; warm < 3; warm++) timeBatch(peer, config, alias, raw, 1);
  let calls = 1;
  let perCall = timeBatch(peer, config, alias, raw, calls);
  while (perCall * calls < minBatch / 4 && calls < 1e6) {
    calls *= 2;
    perCall = timeBatch(peer, config, alias, raw, calls);
  }
  // the machine is shared: the quickest of three batches is the least disturbed estimate
  for (let again = 0; again < 2; again++) perCall = Math.min(perCall, timeBatch(peer, config, alias, raw, calls));
  return Math.max(1, Math.ceil(minBatch / Math.max(perCall, 1e-9)));
}

// One timed round: every message once, in an order rotated by `round`; per-call seconds.
function timeRound(peer, config, alias, messages, calls, round) {
  const times = new Array(messages.length);
  for (let j = 0; j < messages.length; j++) {
    const i = (j + round) % messages.length;
    times[i] = timeBatch(peer, config, alias, messages[i], calls[i]);
  }
  return times;
}

// --serve: after the checks and the calibration, print one JSON line (no medians), then answer
// each stdin line "round K" with {"times": [...]} (one round, per-call seconds per message), until
// "quit" or the end of stdin. bench/_node_peer.py's PeerSession drives it, so that a bench can
// interleave the peer's rounds with its own.
async function serve(header, peer, config, alias, messages, calls) {
  process.stdout.write(JSON.stringify(header) + '\n');
  const lines = require('readline').createInterface({ input: process.stdin, terminal: false });
  for await (const line of lines) {
    const words = line.trim().split(/\s+/);
    if (words[0] === 'quit') break;
    if (words[0] !== 'round') {
      process.stdout.write(JSON.stringify({ error: `unknown command ${JSON.stringify(line)}` }) + '\n');
      continue;
    }
    const times = timeRound(peer, config, alias, messages, calls, parseInt(words[1] || '0', 10) || 0);
    process.stdout.write(JSON.stringify({ times }) + '\n');
  }
  lines.close();
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const { pkg, peer } = loadPeer(opts.peer);
  const config = peerConfig(opts.alias, opts.destination);
  const messages = opts.files.map((file) => fs.readFileSync(file));
  const rejected = [];
  for (let i = 0; i < messages.length; i++) {
    let reason;
    try {
      reason = await check(peer, config, opts.alias, opts.destination, messages[i], i);
    } catch (error) {
      reason = `check raised: ${error.message}`;
    }
    if (reason) rejected.push([i, reason]);
  }
  const minBatch = opts.minBatchMs / 1000;
  const calls = messages.map((raw) => calibrate(peer, config, opts.alias, raw, minBatch));
  const header = {
    peer: `${pkg.name} ${pkg.version}`,
    node: process.version,
    min_batch_ms: opts.minBatchMs,
    calls_per_batch: calls,
    rejected,
  };
  if (opts.serve) return serve(header, peer, config, opts.alias, messages, calls);
  const samples = messages.map(() => []);
  for (let round = 0; round < opts.rounds; round++) {
    timeRound(peer, config, opts.alias, messages, calls, round).forEach((t, i) => samples[i].push(t));
  }
  const result = { ...header, rounds: opts.rounds, medians: samples.map(median) };
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((error) => {
  process.stderr.write(`harness.js: ${error.stack || error}\n`);
  process.exit(2);
});
