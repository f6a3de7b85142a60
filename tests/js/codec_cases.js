/*
 * node tests/js/codec_cases.js VERIFY_JS < cases.json: the answers of verify.js to the unit
 * cases of tests/test_js_verifier.py (canonical msgpack, Ed25519, strict JSON), as one JSON
 * object on stdout. Values cross the process boundary tagged with their type: {"int": "300"},
 * {"str": "é"}, {"bin": "00ff"}, {"map": [[key, value], …]}, arrays, null and booleans.
 */
"use strict";

const fs = require("fs");
const path = require("path");

function fromHex(text) {
  const bytes = new Uint8Array(text.length / 2);
  for (let index = 0; index < bytes.length; index++) {
    bytes[index] = parseInt(text.substr(index * 2, 2), 16);
  }
  return bytes;
}

function toHex(bytes) {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function tag(value) {
  if (value === null || typeof value === "boolean") return value;
  if (typeof value === "number" || typeof value === "bigint") return { int: String(value) };
  if (typeof value === "string") return { str: value };
  if (value instanceof Uint8Array) return { bin: toHex(value) };
  if (Array.isArray(value)) return value.map(tag);
  if (value instanceof Map)
    return { map: Array.from(value, ([key, item]) => [tag(key), tag(item)]) };
  throw new Error("an untaggable value: " + String(value));
}

function untag(value) {
  if (value === null || typeof value === "boolean") return value;
  if (Array.isArray(value)) return value.map(untag);
  if ("int" in value) {
    const big = BigInt(value.int);
    return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(big)
      : big;
  }
  if ("str" in value) return value.str;
  if ("bin" in value) return fromHex(value.bin);
  return new Map(value.map.map(([key, item]) => [untag(key), untag(item)]));
}

function stepOf(action) {
  try {
    action();
    return null;
  } catch (error) {
    return error.step || error.name;
  }
}

/** What a fresh copy of verify.js does where WebCrypto has no Ed25519 (an older browser):
 * importKey refuses the algorithm, as WebCrypto does, with a NotSupportedError. */
async function withoutEd25519(verifyPath) {
  const resolved = require.resolve(path.resolve(verifyPath));
  delete require.cache[resolved];
  const subtle = globalThis.crypto.subtle;
  subtle.importKey = async () => {
    throw new DOMException("Unrecognized name.", "NotSupportedError");
  };
  try {
    const fresh = require(resolved);
    const acceptableKey = new Uint8Array(32).fill(9); // passes sceau's rules, reaches WebCrypto
    let step = null;
    try {
      await fresh.verifyEd25519(acceptableKey, new Uint8Array(1), new Uint8Array(64));
    } catch (error) {
      step = error.step;
    }
    return { supported: await fresh.ed25519Supported(), step: step };
  } finally {
    delete subtle.importKey;
    delete require.cache[resolved];
  }
}

async function main() {
  const SceauVerify = require(path.resolve(process.argv[2]));
  const cases = JSON.parse(fs.readFileSync(0, "utf8"));
  const answers = {
    decode: cases.decode.map((hex) => tag(SceauVerify.decodeCanonical(fromHex(hex)))),
    encode: cases.encode.map((value) => toHex(SceauVerify.encodeCanonical(untag(value)))),
    reject: cases.reject.map((hex) => {
      try {
        SceauVerify.decodeCanonical(fromHex(hex));
        return { refused: false, error: null };
      } catch (error) {
        return { refused: true, error: error.name };
      }
    }),
    ed25519: [],
    acceptable_keys: cases.acceptable_keys.map((hex) =>
      SceauVerify.isAcceptablePublicKey(fromHex(hex)),
    ),
    json: {
      repeated: stepOf(() => SceauVerify.parseJson('{"a": 1, "a": 2}')),
      nested_repeated: stepOf(() => SceauVerify.parseJson('{"a": [{"b": 1, "c": 2, "b": 3}]}')),
      large: String(SceauVerify.parseJson('{"n": 9007199254740993}').n),
      plain: SceauVerify.parseJson('{"a": [1, "\\u00e9", null, true]}'),
    },
  };
  for (const input of cases.ed25519) {
    answers.ed25519.push(
      await SceauVerify.verifyEd25519(
        fromHex(input.key),
        fromHex(input.message),
        fromHex(input.signature),
      ),
    );
  }
  answers.ed25519_supported = await SceauVerify.ed25519Supported();
  answers.without_ed25519 = await withoutEd25519(process.argv[2]);
  process.stdout.write(JSON.stringify(answers) + "\n");
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack) + "\n");
  process.exit(1);
});
