/*
 * Runs the shared receipt vectors (tests/data/receipt_vectors.json) through the JavaScript
 * verifier, in Node (tests/js/run_vectors.js) and in a browser page (tests/test_js_verifier.py),
 * and reports what it concluded for each, for the Python test to compare with the vector's
 * `expect`. It judges nothing itself: the comparison is made in one place, in Python.
 */
(function (root) {
  "use strict";

  function fromHex(text) {
    const bytes = new Uint8Array(text.length / 2);
    for (let index = 0; index < bytes.length; index++) {
      bytes[index] = parseInt(text.substr(index * 2, 2), 16);
    }
    return bytes;
  }

  /** One outcome per vector: {name, ok: true, result} or {name, ok: false, step, message}. */
  async function runVectors(SceauVerify, vectorsText) {
    const file = SceauVerify.parseJson(vectorsText);
    const outcomes = [];
    for (const vector of file.vectors) {
      const options = {};
      if (vector.document_hex !== undefined) options.document = fromHex(vector.document_hex);
      if (vector.witnesses !== undefined) options.witnesses = vector.witnesses;
      const genesis = vector.genesis !== undefined ? vector.genesis : file.genesis;
      try {
        const receipt =
          vector.receipt_text !== undefined
            ? SceauVerify.parseJson(vector.receipt_text)
            : vector.receipt;
        const result = await SceauVerify.verifyReceipt(receipt, genesis, options);
        outcomes.push({ name: vector.name, ok: true, result: result });
      } catch (error) {
        if (!(error instanceof SceauVerify.ReceiptError)) {
          outcomes.push({
            name: vector.name,
            ok: false,
            step: "(crash)",
            message: String(error && error.stack),
          });
        } else {
          outcomes.push({ name: vector.name, ok: false, step: error.step, message: error.message });
        }
      }
    }
    return outcomes;
  }

  if (typeof module === "object" && module.exports) module.exports = { runVectors: runVectors };
  else root.runVectors = runVectors;
})(typeof self !== "undefined" ? self : globalThis);
