// A 32-bit MicroPython for bench/bench_node.py: the WebAssembly port from npm,
// run the way bench_node runs the Unix port's `micropython`:
//
//   node run.mjs [-X heapsize=N[k|m]] [--flash DIR] [--setup CODE] -c CODE [--drive GENERATOR]
//
// env MICROPYPATH (folders joined by ':') becomes sys.path, copied into the
// port's in-memory filesystem; --flash DIR is copied to /flash and made the
// current folder there (the node's flash); --setup CODE runs after that, in
// the setup run (its garbage is collected before CODE); env NODEBENCH is sys.argv[1],
// as this port has no os.getenv. An uncaught exception prints its traceback to
// stderr and exits 1.
//
// This build collects garbage only between top-level runs: inside one,
// gc.collect() is put off and a full heap grows instead of being collected.
// --drive names a generator the code leaves behind (a module attribute); it is
// advanced one top-level run at a time, with a collection before each, so a
// program that yields where it calls for gc.collect() measures live heap as
// it would on a board.
//
// Differences from an ESP32 that matter to heap figures: none in object sizes
// (32-bit words, 16-byte GC blocks, objects in representation A, the same .mpy
// loader); but this build grows its heap instead of collecting when it runs
// out, so only live heap after a collection means anything here: gc.mem_free()
// and a MemoryError under -X heapsize do not.

import fs from "node:fs";
import path from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

function usage(why) {
  process.stderr.write(`run.mjs: ${why}\nusage: node run.mjs [-X heapsize=N[k|m]] [--flash DIR] [--setup CODE] -c CODE [--drive GENERATOR]\n`);
  process.exit(2);
}

function parseSize(text) {
  const m = /^(\d+)([kKmM]?)$/.exec(text);
  if (!m) usage(`bad heapsize ${text}`);
  const scale = { "": 1, k: 1024, m: 1024 * 1024 }[m[2].toLowerCase()];
  return parseInt(m[1], 10) * scale;
}

let heapsize = 1024 * 1024;
let code = null;
let drive = null;
let flash = null;
let extraSetup = "";
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === "-X" && i + 1 < argv.length && argv[i + 1].startsWith("heapsize=")) {
    heapsize = parseSize(argv[++i].slice("heapsize=".length));
  } else if (argv[i] === "-c" && i + 1 < argv.length) {
    code = argv[++i];
  } else if (argv[i] === "--setup" && i + 1 < argv.length) {
    extraSetup = argv[++i];
  } else if (argv[i] === "--flash" && i + 1 < argv.length) {
    flash = argv[++i];
  } else if (argv[i] === "--drive" && i + 1 < argv.length) {
    drive = argv[++i];
    if (!/^[A-Za-z_][\w.]*$/.test(drive)) usage(`bad --drive ${drive}`);
  } else {
    usage(`unexpected argument ${argv[i]}`);
  }
}
if (code === null) usage("no -c CODE");

function copyTree(FS, from, to) {
  FS.mkdirTree(to);
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, entry.name);
    const dest = `${to}/${entry.name}`;
    if (entry.isDirectory()) copyTree(FS, src, dest);
    else if (entry.isFile()) FS.writeFile(dest, fs.readFileSync(src));
  }
}

const folders = (process.env.MICROPYPATH || "").split(":").filter((p) => p);
for (const folder of [...folders, ...(flash === null ? [] : [flash])]) {
  if (!fs.existsSync(folder) || !fs.statSync(folder).isDirectory()) usage(`no folder ${folder}`);
}

const mp = await loadMicroPython({ heapsize, stdout: (data) => process.stdout.write(data), linebuffer: false });
const sysPath = [];
folders.forEach((folder, i) => {
  copyTree(mp.FS, folder, `/path${i}`);
  sysPath.push(`/path${i}`);
});
if (flash !== null) copyTree(mp.FS, flash, "/flash");

const setup = [
  "import sys, os",
  `sys.path[:] = ${JSON.stringify(["", ...sysPath])}`,
  `sys.argv[:] = ${JSON.stringify(["run.mjs", process.env.NODEBENCH || ""])}`,
  flash !== null ? "os.chdir('/flash')" : "",
  "del sys, os",
  extraSetup,
  "import gc",
  "gc.collect()", // done as the next run starts: the code starts on a collected heap
].join("\n");

try {
  mp.runPython(setup);
  mp.runPython(code);
  if (drive !== null) {
    const module = drive.slice(0, drive.lastIndexOf("."));
    if (module) mp.runPython(`import ${module}`);
    for (;;) {
      mp.runPython("gc.collect()");
      mp.runPython(`_run_mjs_done = next(${drive}, "end") == "end"`);
      if (mp.globals.get("_run_mjs_done") === true) break;
    }
  }
} catch (error) {
  if (error.name !== "PythonError") throw error;
  if (error.type !== "SystemExit") {
    process.stderr.write(error.message.endsWith("\n") ? error.message : error.message + "\n");
    process.exit(1);
  }
}
process.exit(0); // the port may leave a timer behind; stdout to a pipe or file is written already
