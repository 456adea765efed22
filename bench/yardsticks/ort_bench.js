// ort_bench.js: the ONNX Runtime yardstick, through npm onnxruntime-node (its bundled CPU build),
// installed by run.py into build/bench-node/ with ONNXRUNTIME_NODE_INSTALL=skip (the postinstall
// would fetch the CUDA provider from the network and fail). One intra-op and one inter-op thread,
// sequential execution. Each timed forward is one `await session.run(feeds)`, so it includes
// N-API, the async hop and tensor marshalling: what a Node caller pays. Prints the line protocol
// of common.h; checks every zoo golden before timing and prints no time on a mismatch.
//
//   node ort_bench.js --node-dir build/bench-node --onnx model.onnx --golden DIR [--batches ..]
'use strict';
const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

const TOL = 1e-4;

function args() {
  const a = { batches: '1,8,64,256', reps: 7, 'target-ms': 20 };
  for (let i = 2; i + 1 < process.argv.length; i += 2) a[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
  return a;
}

// Version 2's input (docs/zoo.md "Golden file format"): element i (from 0) is splitmix64 output i
// of `seed` (a BigInt), its top 8 bits divided by 255 in double, rounded to float32 by the
// Float32Array store. splitmix_frames() of tools/make_zoo.py is the reference.
function splitmixFrames(seed, n) {
  const x = new Float32Array(n);
  const U = (v) => BigInt.asUintN(64, v);
  for (let i = 0; i < n; i++) {
    let z = U(seed + BigInt(i + 1) * 0x9E3779B97F4A7C15n);
    z = U((z ^ (z >> 30n)) * 0xBF58476D1CE4E5B9n);
    z = U((z ^ (z >> 27n)) * 0x94D049BB133111EBn);
    z ^= z >> 31n;
    x[i] = Number(z >> 56n) / 255.0;
  }
  return x;
}

// A [B, ...] -> [B, out] golden (format version 1: the input stored; version 2: a uint64 seed).
function readGolden(file) {
  const buf = fs.readFileSync(file);
  // Copy into a fresh ArrayBuffer: a small file's Buffer may sit inside Node's shared pool at a
  // non-zero byteOffset, and a Float32Array over .buffer would read the wrong bytes.
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length);
  const u = new Uint32Array(ab, 0, Math.floor(buf.length / 4));
  const ver = u[1], rank = u[2];
  if (buf.toString('latin1', 0, 4) !== 'CRLG' || (ver !== 1 && ver !== 2) || rank < 2 || rank > 8)
    throw new Error(file + ': not a [B, ...] -> [B, out] golden file');
  const dims = Array.from(u.subarray(3, 3 + rank));
  const o = 3 + rank; // n_outputs, rank, rows, width
  if (u[o] !== 1 || u[o + 1] !== 2 || u[o + 2] !== dims[0]) throw new Error(file + ': not a [B, out] output');
  const rows = dims[0], inw = dims.slice(1).reduce((x, y) => x * y, 1), outw = u[o + 3];
  const off = 4 * (o + 4);
  const xBytes = ver === 1 ? 4 * rows * inw : 8;
  if (off + xBytes + 4 * rows * outw !== buf.length) throw new Error(file + ': wrong size or trailing bytes');
  const x = ver === 1 ? Float32Array.from(new Float32Array(ab, off, rows * inw))
    : splitmixFrames(buf.readBigUInt64LE(off), rows * inw);
  const y = new Float32Array(ab, off + xBytes, rows * outw);
  return { rows, dims, inw, outw, x, y: Float32Array.from(y) };
}

async function bestNs(run, reps, targetNs) {
  let iters = 1;
  for (;;) { // calibrate (and warm up)
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iters; i++) await run();
    if (Number(process.hrtime.bigint() - t0) >= targetNs / 2 || iters >= 1 << 24) break;
    iters *= 2;
  }
  iters *= 2;
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iters; i++) await run();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / iters);
  }
  return best;
}

async function main() {
  const a = args();
  let ort;
  try {
    ort = createRequire(path.resolve(a['node-dir'], 'package.json'))('onnxruntime-node');
  } catch (e) {
    console.log('error ort onnxruntime-node not installed in ' + a['node-dir'] + ': ' + e.message.split('\n')[0]);
    return 3;
  }
  const sess = await ort.InferenceSession.create(a.onnx, {
    intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
  });
  const inName = sess.inputNames[0], outName = sess.outputNames[0];
  let ver = '?';
  try { ver = require(path.resolve(a['node-dir'], 'node_modules/onnxruntime-node/package.json')).version; } catch (e) { /* only for the info line */ }
  console.log(`info ort onnxruntime-node ${ver}, 1 intra-op thread, await session.run per forward`);
  const goldens = [1, 7, 64].map((n) => path.join(a.golden, `golden_b${n}.bin`))
    .map(readGolden);
  let ok = true;
  for (const g of goldens) {
    const out = await sess.run({ [inName]: new ort.Tensor('float32', g.x, g.dims) });
    const y = out[outName].data;
    let err = y.length === g.y.length ? 0 : Infinity;
    for (let i = 0; i < g.y.length && err !== Infinity; i++) {
      const d = Math.abs(y[i] - g.y[i]);
      if (!(d <= err)) err = Number.isNaN(d) ? Infinity : d;
    }
    console.log(`check ort ${g.rows} ${err.toPrecision(3)}`);
    if (!(err <= TOL)) {
      console.log(`error ort disagrees with golden_b${g.rows}: max abs error ${err.toPrecision(3)} > ${TOL}, not timed`);
      ok = false;
    }
  }
  if (!ok) return 1;
  const gb = goldens[goldens.length - 1]; // the largest: its inputs, cycled, are the timing inputs
  for (const b of a.batches.split(',').map(Number)) {
    const x = new Float32Array(b * gb.inw);
    for (let r = 0; r < b; r++) x.set(gb.x.subarray((r % gb.rows) * gb.inw, (r % gb.rows + 1) * gb.inw), r * gb.inw);
    const feeds = { [inName]: new ort.Tensor('float32', x, [b].concat(gb.dims.slice(1))) };
    const ns = await bestNs(() => sess.run(feeds), Number(a.reps), Number(a['target-ms']) * 1e6);
    console.log(`time ort ${b} ${ns.toFixed(1)}`);
  }
  return 0;
}

if (require.main !== module) module.exports = { readGolden, splitmixFrames };
else main().then((rc) => { process.exitCode = rc; }, (e) => { console.log('error ort ' + String(e.message || e).split('\n')[0]); process.exitCode = 1; });
