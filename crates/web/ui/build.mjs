// Builds the CacheOS web UI into dist/ (committed; embedded by crates/web/src/ui.rs).
// Deterministic: pinned esbuild from package-lock.json, no timestamps, asset versions are content hashes.
// `node build.mjs --out DIR` writes elsewhere (scripts/test compares that with dist/ byte for byte).
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const i = process.argv.indexOf('--out');
const out = i > 0 ? process.argv[i + 1] : join(here, 'dist');
mkdirSync(out, { recursive: true });

const common = { bundle: true, minify: true, write: false, legalComments: 'eof', logLevel: 'warning', charset: 'utf8' };
const js = await build({ ...common, entryPoints: [join(here, 'src/main.js')], format: 'iife', target: 'es2020' });
const css = await build({ ...common, entryPoints: [join(here, 'src/app.css')], target: 'chrome100' });
const hash = (b) => createHash('sha256').update(b).digest('hex').slice(0, 12);
const jsBytes = js.outputFiles[0].contents;
const cssBytes = css.outputFiles[0].contents;
writeFileSync(join(out, 'app.js'), jsBytes);
writeFileSync(join(out, 'app.css'), cssBytes);
copyFileSync(join(here, 'src/icon.svg'), join(out, 'icon.svg'));
const html = readFileSync(join(here, 'src/index.html'), 'utf8')
  .replace('__JS__', hash(jsBytes))
  .replace('__CSS__', hash(cssBytes))
  .replace('__ICON__', hash(readFileSync(join(here, 'src/icon.svg'))));
writeFileSync(join(out, 'index.html'), html);
console.log(`built ${out}: app.js ${jsBytes.length} B, app.css ${cssBytes.length} B`);
