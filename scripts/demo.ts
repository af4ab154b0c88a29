/**
 * `npm run demo`: what baton can do so far, against a real BEAM.
 *
 * 1. Terms: `erl` writes a term with term_to_binary/1; baton decodes it, re-encodes it
 *    byte for byte, and erl reads baton's reply back with binary_to_term/1.
 * 2. Distribution: baton joins a real `erl` node as a hidden node, calls it with erpc,
 *    evaluates an expression there, and shows the node's io:format output in its own log.
 *
 * The demo grows with baton: peers and upgrades join it as they land.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { ErpcError, Node, shortHostname } from '../src/distribution/index.js';
import { atom, charlist, decode, encode, type Term, tuple } from '../src/etf/index.js';

const step = (text: string) => console.log(`\n== ${text}`);
const show = (t: unknown) => inspect(t, { depth: 6, colors: process.stdout.isTTY, breakLength: 100 });

function erl(expr: string): string {
  return execFileSync('erl', ['-noshell', '-eval', `${expr}, halt().`], { encoding: 'utf8' });
}

async function terms(): Promise<boolean> {
  step('erl: term_to_binary of a term with every kind of value');
  const hex = erl(
    `io:format("~s", [binary:encode_hex(term_to_binary({self(), make_ref(), #{name => <<"baton">>, pi => 3.14, one => 1.0}, "a charlist", [1, 2 | tail], 1 bsl 70, fun lists:map/2, <<5:3>>}))])`,
  );
  const bytes = Buffer.from(hex, 'hex');
  console.log(`${bytes.length} bytes from the BEAM`);

  step('baton: decode, and encode again');
  const term = decode(bytes);
  console.log(show(term));
  const same = encode(term, { minorVersion: 1 }).equals(bytes);
  console.log(`re-encoded byte for byte: ${same}`);

  step('baton: encode a reply; erl: binary_to_term');
  const reply: Term = tuple(atom('ok'), charlist('from TypeScript'), new Map<Term, Term>([[atom('seen'), term]]));
  console.log(
    erl(`io:format("~p~n", [binary_to_term(binary:decode_hex(<<"${encode(reply).toString('hex')}">>))])`).trim(),
  );
  return same;
}

async function distribution(): Promise<void> {
  const cookie = randomBytes(12).toString('hex');
  const peerName = `demo-peer-${process.pid}`;
  const host = shortHostname();
  step(`erl: start a node ${peerName}@${host}`);
  const peer = spawn('erl', ['-sname', peerName, '-setcookie', cookie, '-noshell', '-noinput'], { stdio: 'ignore' });
  const node = new Node({
    name: `baton-demo-${process.pid}`,
    cookie,
    hidden: true,
    startEpmd: true,
    log: (line, from) => console.log(`  [io from ${from}] ${line}`),
  });
  try {
    const target = `${peerName}@${host}`;
    // The node needs a moment to register with EPMD.
    for (let i = 0; ; i++) {
      try {
        await node.connect(target);
        break;
      } catch (err) {
        if (i === 50) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    console.log(`baton is ${node.name}, connected as a hidden node`);

    step('baton → erl: erpc:call(erlang, system_info, [otp_release])');
    console.log(show(await node.erpc(target, 'erlang', 'system_info', [atom('otp_release')])));

    step('baton → erl: nodes(hidden) and nodes() on the peer');
    console.log('hidden:', show(await node.erpc(target, 'erlang', 'nodes', [atom('hidden')])));
    console.log('visible:', show(await node.erpc(target, 'erlang', 'nodes', [])));

    step("baton → erl: eval an expression that also prints (its output is baton's log)");
    const value = await node.eval(target, 'io:format("hello from ~s~n", [node()]), lists:sum(lists:seq(1, 100)).');
    console.log('value:', show(value));

    step('baton → erl: an error arrives typed, with the remote stack');
    const err = await node
      .erpc(target, 'erlang', 'binary_to_atom', [Buffer.from([0xff]), atom('utf8')])
      .catch((e: unknown) => e);
    if (err instanceof ErpcError) console.log(`${err.name}: class ${err.class}, reason ${show(err.reason)}`);
  } finally {
    await node.close();
    peer.kill('SIGKILL');
  }
}

const same = await terms();
await distribution();
if (!same) process.exitCode = 1;
