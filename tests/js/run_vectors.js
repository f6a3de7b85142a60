/*
 * node tests/js/run_vectors.js VERIFY_JS VECTORS_JSON: runs every receipt vector through
 * verify.js in one Node process and prints the outcomes as one JSON array on stdout.
 */
"use strict";

const fs = require("fs");
const path = require("path");
const { runVectors } = require("./vectors_runner.js");

async function main() {
  const [verifyPath, vectorsPath] = process.argv.slice(2);
  if (!verifyPath || !vectorsPath) {
    process.stderr.write("usage: node run_vectors.js VERIFY_JS VECTORS_JSON\n");
    process.exit(2);
  }
  const SceauVerify = require(path.resolve(verifyPath));
  const outcomes = await runVectors(SceauVerify, fs.readFileSync(vectorsPath, "utf8"));
  process.stdout.write(JSON.stringify(outcomes) + "\n");
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack) + "\n");
  process.exit(1);
});
