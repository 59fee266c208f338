// The reference side of the tokenizer tests and benchmark: Hugging Face's Rust `tokenizers`
// library through its Node binding (npm `tokenizers`, prebuilt native binary).
//
//   node tokenizer_reference.js golden TOKENIZER.json CORPUS.jsonl OUT.json
//       ids with and without special tokens, and the library's decodes, per corpus string
//   node tokenizer_reference.js bench TOKENIZER.json TEXT_FILE REPEATS
//       prints {"load_s": ..., "encode_s": [...], "bytes": N, "tokens": T, "ids_hash": FNV-1a of the ids}
'use strict';
const fs = require('fs');
const { Tokenizer } = require('tokenizers');

// Which native binary actually runs: the tests insist on the linux-x64-gnu build.
function nativeBinary() {
  return Object.keys(require.cache).filter((p) => p.endsWith('.node')).join(',');
}

async function golden(tokPath, corpusPath, outPath) {
  const tok = Tokenizer.fromFile(tokPath);
  const lines = fs.readFileSync(corpusPath, 'utf8').split('\n').filter((l) => l.length > 0);
  const cases = [];
  for (const line of lines) {
    const text = JSON.parse(line);
    const plain = await tok.encode(text, null, { addSpecialTokens: false });
    const special = await tok.encode(text, null, { addSpecialTokens: true });
    const ids = Array.from(plain.getIds());
    const idsSpecial = Array.from(special.getIds());
    cases.push({
      text,
      ids,
      ids_special: idsSpecial,
      decoded: await tok.decode(ids, false),
      decoded_special_skipped: await tok.decode(idsSpecial, true),
      decoded_special_kept: await tok.decode(idsSpecial, false),
    });
  }
  // The whole corpus as one text: SentencePiece-style files see it as a few very long words.
  const all = lines.map((l) => JSON.parse(l)).join('\n');
  const whole = { text: all, ids: Array.from((await tok.encode(all, null, { addSpecialTokens: false })).getIds()) };
  const pkg = require('tokenizers/package.json');
  const out = { tokenizer: tokPath, reference: { package: 'tokenizers', version: pkg.version, binary: nativeBinary() }, cases, whole };
  fs.writeFileSync(outPath, JSON.stringify(out));
}

// FNV-1a over the ids as 32-bit little-endian words, as hex (bench_tokenizer.cpp computes the same).
function fnv1a(ids) {
  let h = 0xcbf29ce484222325n;
  const p = 0x100000001b3n, mask = (1n << 64n) - 1n;
  for (const id of ids) {
    for (let k = 0; k < 4; ++k) {
      h ^= BigInt((id >>> (8 * k)) & 0xff);
      h = (h * p) & mask;
    }
  }
  return h.toString(16);
}

async function bench(tokPath, textPath, repeats) {
  const t0 = process.hrtime.bigint();
  const tok = Tokenizer.fromFile(tokPath);
  const loadS = Number(process.hrtime.bigint() - t0) / 1e9;
  const text = fs.readFileSync(textPath, 'utf8');
  const encodeS = [];
  let tokens = 0;
  let idsHash = '';
  for (let r = 0; r < repeats; ++r) {
    const t = process.hrtime.bigint();
    const enc = await tok.encode(text, null, { addSpecialTokens: false });
    encodeS.push(Number(process.hrtime.bigint() - t) / 1e9);
    const ids = enc.getIds();
    tokens = ids.length;
    idsHash = fnv1a(ids);
  }
  process.stdout.write(JSON.stringify({ load_s: loadS, encode_s: encodeS, bytes: Buffer.byteLength(text), tokens, ids_hash: idsHash, binary: nativeBinary() }) + '\n');
}

const [mode, a, b, c] = process.argv.slice(2);
(mode === 'golden' ? golden(a, b, c) : mode === 'bench' ? bench(a, b, Number(c || 3)) : Promise.reject(new Error('usage: golden|bench ...')))
  .catch((e) => { console.error('tokenizer_reference.js: ' + (e && e.stack ? e.stack : e)); process.exit(1); });
