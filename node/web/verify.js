/*
 * sceau receipt verifier, in the browser and in Node (>= 20).
 *
 * A receipt proves, to someone who holds only the consortium's genesis file, that an act was
 * committed: the member sets from the genesis on, the certified block, the transaction's place
 * in it and its signature, the signer's right to sign for the act's issuer, the act's status
 * later on, and its place in the log of every act under a checkpoint the members (and maybe
 * witnesses) signed. This file is a line-by-line port of the Python verifier
 * (ledger.receipt.verify_receipt and what it calls): the same checks, in the same order, and a
 * failure names the same step. docs/format.md defines every byte; docs/audit_receipts.md
 * ("Checking a receipt in a browser") says what this file checks and where it stops.
 *
 * No dependency, no build step, no module syntax: it defines the global SceauVerify in a
 * browser and module.exports in Node. Cryptography is WebCrypto's (crypto.subtle: SHA-256 and
 * Ed25519), which needs a secure context in a browser (https, localhost or a file). The strict
 * Ed25519 rules of sceau (no S >= L, no small-order or non-canonical key) are applied here
 * before WebCrypto is asked, as ledger/crypto.py does before OpenSSL.
 */
(function (root) {
  "use strict";

  // --- errors -------------------------------------------------------------------------------

  /** A receipt that does not prove what it claims; `step` names the check that failed. */
  class ReceiptError extends Error {
    constructor(step, message) {
      super(step + ": " + message);
      this.name = "ReceiptError";
      this.step = step;
      this.detail = message;
    }
  }

  /** The steps a failure may name, in the order they are checked ("format": the JSON or a
   * model is malformed, before any check; "quorum": too few members signed a checkpoint). */
  const STEPS = [
    "format",
    "chain",
    "transaction",
    "members",
    "members at height N",
    "block",
    "inclusion",
    "signer",
    "document",
    "status",
    "log",
    "checkpoint",
    "quorum",
    "witnesses",
  ];

  function fail(step, message) {
    throw new ReceiptError(step, message);
  }

  // --- bytes, hex, text, base64 -------------------------------------------------------------

  const HEX = "0123456789abcdef";

  function toHex(bytes) {
    let text = "";
    for (let index = 0; index < bytes.length; index++) {
      text += HEX[bytes[index] >> 4] + HEX[bytes[index] & 15];
    }
    return text;
  }

  function fromHex(text) {
    const bytes = new Uint8Array(text.length / 2);
    for (let index = 0; index < bytes.length; index++) {
      bytes[index] = parseInt(text.substr(index * 2, 2), 16);
    }
    return bytes;
  }

  function concat(...parts) {
    let length = 0;
    for (const part of parts) length += part.length;
    const joined = new Uint8Array(length);
    let offset = 0;
    for (const part of parts) {
      joined.set(part, offset);
      offset += part.length;
    }
    return joined;
  }

  function equalBytes(left, right) {
    if (!(left instanceof Uint8Array) || !(right instanceof Uint8Array)) return false;
    if (left.length !== right.length) return false;
    for (let index = 0; index < left.length; index++) {
      if (left[index] !== right[index]) return false;
    }
    return true;
  }

  /** -1, 0 or 1: byte-wise lexicographic order (shorter first on a common prefix). */
  function compareBytes(left, right) {
    const length = Math.min(left.length, right.length);
    for (let index = 0; index < length; index++) {
      if (left[index] !== right[index]) return left[index] < right[index] ? -1 : 1;
    }
    return left.length === right.length ? 0 : left.length < right.length ? -1 : 1;
  }

  const utf8Encoder = new TextEncoder();
  const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

  function utf8(text) {
    return utf8Encoder.encode(text);
  }

  /** Text that is valid Unicode (no lone surrogate): only such text has a UTF-8 form. */
  function isWellFormed(text) {
    for (let index = 0; index < text.length; index++) {
      const unit = text.charCodeAt(index);
      if (unit >= 0xd800 && unit <= 0xdbff) {
        const next = text.charCodeAt(index + 1);
        if (!(next >= 0xdc00 && next <= 0xdfff)) return false;
        index++;
      } else if (unit >= 0xdc00 && unit <= 0xdfff) {
        return false;
      }
    }
    return true;
  }

  const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

  function base64Encode(bytes, alphabet, padded) {
    let text = "";
    for (let index = 0; index < bytes.length; index += 3) {
      const a = bytes[index];
      const b = index + 1 < bytes.length ? bytes[index + 1] : 0;
      const c = index + 2 < bytes.length ? bytes[index + 2] : 0;
      const triple = (a << 16) | (b << 8) | c;
      const count = Math.min(3, bytes.length - index) + 1;
      for (let sextet = 0; sextet < 4; sextet++) {
        if (sextet < count) text += alphabet[(triple >> (18 - 6 * sextet)) & 63];
        else if (padded) text += "=";
      }
    }
    return text;
  }

  /** Standard base64 with padding, accepted only in its one canonical spelling (ledger/note.py);
   * null if it is not. */
  function base64DecodeCanonical(text) {
    if (typeof text !== "string" || text.length % 4 !== 0) return null;
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
    const body = text.replace(/=+$/, "");
    const bytes = new Uint8Array(Math.floor((body.length * 6) / 8));
    let buffer = 0;
    let bits = 0;
    let offset = 0;
    for (const character of body) {
      buffer = (buffer << 6) | BASE64.indexOf(character);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        bytes[offset++] = (buffer >> bits) & 255;
      }
    }
    const decoded = bytes.subarray(0, offset);
    return base64Encode(decoded, BASE64, true) === text ? decoded : null;
  }

  const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

  // --- WebCrypto ----------------------------------------------------------------------------

  function subtle() {
    const provider = typeof globalThis !== "undefined" ? globalThis.crypto : undefined;
    if (!provider || !provider.subtle) {
      throw new ReceiptError(
        "format",
        "this browser offers no WebCrypto (crypto.subtle): open the page over https, from " +
          "localhost or from a file, in a recent browser",
      );
    }
    return provider.subtle;
  }

  async function sha256(bytes) {
    return new Uint8Array(await subtle().digest("SHA-256", bytes));
  }

  async function sha256Hex(bytes) {
    return toHex(await sha256(bytes));
  }

  // --- Ed25519, with sceau's strict rules (docs/format.md §3.2, §3.3) ------------------------

  const FIELD_PRIME = (1n << 255n) - 19n;
  const GROUP_ORDER = (1n << 252n) + 27742317777372353535851937790883648493n;
  const SMALL_ORDER_Y = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  ];

  function littleEndian(bytes) {
    let value = 0n;
    for (let index = bytes.length - 1; index >= 0; index--) {
      value = (value << 8n) | BigInt(bytes[index]);
    }
    return value;
  }

  /** True if `key` is 32 bytes, its y canonical (< p) and the point not of small order. */
  function isAcceptablePublicKey(key) {
    if (!(key instanceof Uint8Array) || key.length !== 32) return false;
    const y = key.slice();
    y[31] &= 0x7f;
    if (littleEndian(y) >= FIELD_PRIME) return false;
    return !SMALL_ORDER_Y.includes(toHex(y));
  }

  const importedKeys = new Map();
  const IMPORTED_KEYS_MAX = 4096;

  function unsupported() {
    return new ReceiptError(
      "format",
      "this browser's WebCrypto cannot verify Ed25519 signatures, so nothing can be checked " +
        "here: use a recent browser (Chromium 137, Firefox 129, Safari 17 or later)",
    );
  }

  /** The WebCrypto key of `key` (null: WebCrypto refuses these bytes), each imported once;
   * throws a ReceiptError where WebCrypto has no Ed25519 at all. */
  async function importVerifyKey(key) {
    const hex = toHex(key);
    let imported = importedKeys.get(hex);
    if (imported === undefined) {
      imported = subtle()
        .importKey("raw", key, { name: "Ed25519" }, false, ["verify"])
        .catch((error) => (error && error.name === "NotSupportedError" ? "unsupported" : null));
      if (importedKeys.size < IMPORTED_KEYS_MAX) importedKeys.set(hex, imported);
    }
    const result = await imported;
    if (result === "unsupported") throw unsupported();
    return result;
  }

  const ED25519_PROBE_KEY = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

  /** True if this browser's WebCrypto verifies Ed25519 (RFC 8032's first test key imports):
   * a page may ask before it asks for files. */
  async function ed25519Supported() {
    try {
      await importVerifyKey(fromHex(ED25519_PROBE_KEY));
      return true;
    } catch (error) {
      if (error instanceof ReceiptError) return false;
      throw error;
    }
  }

  /** True if `signature` is `key`'s Ed25519 signature of `message` as given (verify_raw):
   * S < L and an acceptable key checked here, then WebCrypto (cofactorless, like OpenSSL). */
  async function verifyRaw(key, message, signature) {
    if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
    if (littleEndian(signature.subarray(32)) >= GROUP_ORDER) return false;
    if (!isAcceptablePublicKey(key)) return false;
    const imported = await importVerifyKey(key);
    if (imported === null) return false;
    try {
      return await subtle().verify({ name: "Ed25519" }, imported, signature, message);
    } catch (error) {
      if (error && error.name === "NotSupportedError") throw unsupported();
      return false;
    }
  }

  const TAG_TRANSACTION = utf8("sceau/tx/v1");
  const TAG_COMMIT = utf8("sceau/commit/v1");

  /** The domain-separated message: len(tag) || tag || chain_id || payload (§3.1). */
  function domainMessage(tag, chainId, payload) {
    return concat(new Uint8Array([tag.length]), tag, chainId, payload);
  }

  async function verifySigned(key, tag, chainId, payload, signature) {
    return verifyRaw(key, domainMessage(tag, chainId, payload), signature);
  }

  // --- canonical msgpack (docs/format.md §2) ------------------------------------------------

  const INT_MIN = -(1n << 63n);
  const INT_MAX = (1n << 64n) - 1n;

  /** The §2.4 limits (ledger.encoding.DEFAULT_LIMITS). */
  const DEFAULT_LIMITS = Object.freeze({
    totalBytesMax: 32 * 1024 * 1024,
    depthMax: 32,
    strBytesMax: 1024 * 1024,
    binBytesMax: 16 * 1024 * 1024,
    arrayLengthMax: 1000000,
    mapLengthMax: 100000,
  });

  class EncodingError extends Error {
    constructor(message) {
      super(message);
      this.name = "EncodingError";
    }
  }

  /** Encode `value` canonically. Values: null, booleans, integers (safe numbers or BigInt in
   * [-2^63, 2^64 - 1]), Uint8Array (bin), strings (str), arrays, Map (keys: text, bytes or
   * integers) and plain objects (text keys). */
  function encodeCanonical(value, depthMax) {
    const parts = [];
    encodeValue(value, depthMax === undefined ? DEFAULT_LIMITS.depthMax : depthMax, parts);
    return concat(...parts);
  }

  function header(parts, small, smallMax, codes, length) {
    if (small !== null && length <= smallMax) {
      parts.push(new Uint8Array([small | length]));
    } else if (codes[0] !== null && length <= 0xff) {
      parts.push(new Uint8Array([codes[0], length]));
    } else if (length <= 0xffff) {
      parts.push(new Uint8Array([codes[1], length >> 8, length & 0xff]));
    } else if (length <= 0xffffffff) {
      parts.push(
        new Uint8Array([
          codes[2],
          length >>> 24,
          (length >> 16) & 0xff,
          (length >> 8) & 0xff,
          length & 0xff,
        ]),
      );
    } else {
      throw new EncodingError("a length above 2^32 - 1 has no msgpack form");
    }
  }

  function encodeInteger(value, parts) {
    const big = BigInt(value);
    if (big < INT_MIN || big > INT_MAX) {
      throw new EncodingError("integer " + big + " is outside [-2^63, 2^64 - 1]");
    }
    const fixed = (code, bytes, number) => {
      const out = new Uint8Array(1 + bytes);
      out[0] = code;
      let rest = BigInt.asUintN(bytes * 8, number);
      for (let index = bytes; index >= 1; index--) {
        out[index] = Number(rest & 0xffn);
        rest >>= 8n;
      }
      parts.push(out);
    };
    if (big >= 0n) {
      if (big <= 0x7fn) parts.push(new Uint8Array([Number(big)]));
      else if (big <= 0xffn) fixed(0xcc, 1, big);
      else if (big <= 0xffffn) fixed(0xcd, 2, big);
      else if (big <= 0xffffffffn) fixed(0xce, 4, big);
      else fixed(0xcf, 8, big);
    } else if (big >= -32n) {
      parts.push(new Uint8Array([Number(BigInt.asUintN(8, big))]));
    } else if (big >= -128n) fixed(0xd0, 1, big);
    else if (big >= -32768n) fixed(0xd1, 2, big);
    else if (big >= -2147483648n) fixed(0xd2, 4, big);
    else fixed(0xd3, 8, big);
  }

  function encodeValue(value, depthLeft, parts) {
    if (value === null) {
      parts.push(new Uint8Array([0xc0]));
    } else if (value === false || value === true) {
      parts.push(new Uint8Array([value ? 0xc3 : 0xc2]));
    } else if (typeof value === "bigint") {
      encodeInteger(value, parts);
    } else if (typeof value === "number") {
      if (!Number.isSafeInteger(value)) {
        throw new EncodingError("only integers have a canonical form (and safe ones as numbers)");
      }
      encodeInteger(value, parts);
    } else if (typeof value === "string") {
      if (!isWellFormed(value)) throw new EncodingError("text that is not valid Unicode");
      const bytes = utf8(value);
      header(parts, 0xa0, 31, [0xd9, 0xda, 0xdb], bytes.length);
      parts.push(bytes);
    } else if (value instanceof Uint8Array) {
      header(parts, null, -1, [0xc4, 0xc5, 0xc6], value.length);
      parts.push(value);
    } else if (Array.isArray(value)) {
      if (depthLeft <= 0) throw new EncodingError("containers nest deeper than the depth limit");
      header(parts, 0x90, 15, [null, 0xdc, 0xdd], value.length);
      for (const item of value) encodeValue(item, depthLeft - 1, parts);
    } else if (
      value instanceof Map ||
      (typeof value === "object" && value.constructor === Object)
    ) {
      if (depthLeft <= 0) throw new EncodingError("containers nest deeper than the depth limit");
      const entries = [];
      const pairs = value instanceof Map ? Array.from(value.entries()) : Object.entries(value);
      for (const [key, item] of pairs) {
        const isInteger =
          typeof key === "bigint" || (typeof key === "number" && Number.isSafeInteger(key));
        if (!(typeof key === "string" || key instanceof Uint8Array || isInteger)) {
          throw new EncodingError("map keys must be text, bytes or integers");
        }
        entries.push([encodeCanonical(key, 0), item]);
      }
      entries.sort((left, right) => compareBytes(left[0], right[0]));
      for (let index = 1; index < entries.length; index++) {
        if (compareBytes(entries[index - 1][0], entries[index][0]) === 0) {
          throw new EncodingError("a map repeats a key");
        }
      }
      header(parts, 0x80, 15, [null, 0xde, 0xdf], entries.length);
      for (const [key, item] of entries) {
        parts.push(key);
        encodeValue(item, depthLeft - 1, parts);
      }
    } else {
      throw new EncodingError("a value of type " + typeof value + " has no canonical encoding");
    }
  }

  /** Decode one canonical msgpack document (§2.3) under `limits` (§2.4); throws EncodingError
   * for anything else. Maps decode as Map (keys: strings, numbers or BigInt, Uint8Array),
   * integers as numbers when safe and BigInt otherwise, bin as Uint8Array. */
  function decodeCanonical(bytes, limits) {
    limits = Object.assign({}, DEFAULT_LIMITS, limits || {});
    if (!(bytes instanceof Uint8Array)) throw new EncodingError("expected bytes");
    if (bytes.length > limits.totalBytesMax) {
      throw new EncodingError(
        "document is " + bytes.length + " bytes, more than the limit of " + limits.totalBytesMax,
      );
    }
    if (bytes.length === 0) throw new EncodingError("empty document");
    const reader = { bytes: bytes, offset: 0, limits: limits };
    const value = decodeValue(reader, limits.depthMax);
    if (reader.offset !== bytes.length)
      throw new EncodingError("trailing bytes after the document");
    return value;
  }

  function take(reader, count) {
    if (count > reader.bytes.length - reader.offset) throw new EncodingError("truncated document");
    const slice = reader.bytes.subarray(reader.offset, reader.offset + count);
    reader.offset += count;
    return slice;
  }

  function readUnsigned(reader, count) {
    const slice = take(reader, count);
    let value = 0n;
    for (const byte of slice) value = (value << 8n) | BigInt(byte);
    return value;
  }

  function integerValue(big) {
    return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(big)
      : big;
  }

  function notShortest() {
    throw new EncodingError("not the canonical encoding (a longer form than needed)");
  }

  /** The length after a str8/16/32, bin8/16/32, array16/32 or map16/32 code; `minimums` are
   * the least lengths each form may carry (shorter ones have a shorter form). */
  function readLength(reader, code, codes, minimums) {
    const form = codes.indexOf(code);
    const length = Number(readUnsigned(reader, [1, 2, 4][form]));
    if (length < minimums[form]) notShortest();
    return length;
  }

  function decodeValue(reader, depthLeft) {
    const code = take(reader, 1)[0];
    if (code <= 0x7f) return code;
    if (code >= 0xe0) return code - 0x100;
    if (code === 0xc0) return null;
    if (code === 0xc2) return false;
    if (code === 0xc3) return true;
    if (code >= 0xcc && code <= 0xcf) {
      const size = 1 << (code - 0xcc);
      const value = readUnsigned(reader, size);
      const minimum = [0x80n, 0x100n, 0x10000n, 0x100000000n][code - 0xcc];
      if (value < minimum) notShortest();
      return integerValue(value);
    }
    if (code >= 0xd0 && code <= 0xd3) {
      const size = 1 << (code - 0xd0);
      const value = BigInt.asIntN(size * 8, readUnsigned(reader, size));
      if (value >= 0n)
        throw new EncodingError("not canonical: a non-negative integer in a signed family");
      const minimum = [-32n, -128n, -32768n, -2147483648n][code - 0xd0];
      if (value >= minimum) notShortest();
      return integerValue(value);
    }
    if ((code >= 0xa0 && code <= 0xbf) || (code >= 0xd9 && code <= 0xdb)) {
      const length =
        code <= 0xbf
          ? code & 0x1f
          : readLength(reader, code, [0xd9, 0xda, 0xdb], [32, 0x100, 0x10000]);
      if (length > reader.limits.strBytesMax)
        throw new EncodingError("a text is longer than the limit");
      try {
        return utf8Decoder.decode(take(reader, length));
      } catch (error) {
        if (error instanceof EncodingError) throw error;
        throw new EncodingError("text that is not valid UTF-8");
      }
    }
    if (code >= 0xc4 && code <= 0xc6) {
      const length = readLength(reader, code, [0xc4, 0xc5, 0xc6], [0, 0x100, 0x10000]);
      if (length > reader.limits.binBytesMax)
        throw new EncodingError("bytes longer than the limit");
      return take(reader, length).slice();
    }
    if ((code >= 0x90 && code <= 0x9f) || code === 0xdc || code === 0xdd) {
      const length =
        code <= 0x9f ? code & 0x0f : readLength(reader, code, [null, 0xdc, 0xdd], [0, 16, 0x10000]);
      if (depthLeft <= 0) throw new EncodingError("containers nest deeper than the depth limit");
      if (length > reader.limits.arrayLengthMax)
        throw new EncodingError("an array is longer than the limit");
      if (length > reader.bytes.length - reader.offset)
        throw new EncodingError("truncated document");
      const items = [];
      for (let index = 0; index < length; index++) items.push(decodeValue(reader, depthLeft - 1));
      return items;
    }
    if ((code >= 0x80 && code <= 0x8f) || code === 0xde || code === 0xdf) {
      const length =
        code <= 0x8f ? code & 0x0f : readLength(reader, code, [null, 0xde, 0xdf], [0, 16, 0x10000]);
      if (depthLeft <= 0) throw new EncodingError("containers nest deeper than the depth limit");
      if (length > reader.limits.mapLengthMax)
        throw new EncodingError("a map is longer than the limit");
      if (2 * length > reader.bytes.length - reader.offset)
        throw new EncodingError("truncated document");
      const map = new Map();
      let previous = null;
      for (let index = 0; index < length; index++) {
        const start = reader.offset;
        const first = reader.bytes[start];
        const key = decodeValue(reader, 0);
        const isKeyType =
          typeof key === "string" ||
          typeof key === "number" ||
          typeof key === "bigint" ||
          key instanceof Uint8Array;
        if (!isKeyType || first === 0xc0 || first === 0xc2 || first === 0xc3) {
          throw new EncodingError("not canonical: a map key that is not text, bytes or an integer");
        }
        const encodedKey = reader.bytes.subarray(start, reader.offset);
        if (previous !== null && compareBytes(previous, encodedKey) >= 0) {
          throw new EncodingError(
            "not canonical: map keys are not sorted by their encoding, or repeat",
          );
        }
        previous = encodedKey;
        map.set(key, decodeValue(reader, depthLeft - 1));
      }
      return map;
    }
    if (code === 0xca || code === 0xcb)
      throw new EncodingError("not canonical: floats are not allowed");
    if (code === 0xc1) throw new EncodingError("malformed msgpack: 0xc1 is never used");
    throw new EncodingError("not canonical: extension types are not allowed");
  }

  // --- strict JSON (docs/format.md §5.10: no repeated key) -----------------------------------

  /** Parse JSON text, refusing an object that repeats a key (a ReceiptError at step "format").
   * Integers beyond 2^53 come back as BigInt (exact), so that they are refused by name later
   * rather than silently rounded. */
  function parseJson(text) {
    if (typeof text !== "string") fail("format", "expected JSON text");
    const parser = { text: text, offset: 0, depth: 0 };
    skipSpace(parser);
    const value = parseJsonValue(parser);
    skipSpace(parser);
    if (parser.offset !== text.length) jsonFail(parser, "unexpected text after the JSON value");
    return value;
  }

  const JSON_DEPTH_MAX = 64;

  function jsonFail(parser, message) {
    fail("format", "not valid JSON at character " + parser.offset + ": " + message);
  }

  function skipSpace(parser) {
    while (parser.offset < parser.text.length && " \t\n\r".includes(parser.text[parser.offset])) {
      parser.offset++;
    }
  }

  function parseJsonValue(parser) {
    const character = parser.text[parser.offset];
    if (character === "{") return parseJsonObject(parser);
    if (character === "[") return parseJsonArray(parser);
    if (character === '"') return parseJsonString(parser);
    for (const [word, value] of [
      ["true", true],
      ["false", false],
      ["null", null],
    ]) {
      if (parser.text.startsWith(word, parser.offset)) {
        parser.offset += word.length;
        return value;
      }
    }
    const match = /^-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(
      parser.text.slice(parser.offset, parser.offset + 400),
    );
    if (match === null || match[0] === "" || match[0] === "-") jsonFail(parser, "expected a value");
    parser.offset += match[0].length;
    if (match[1] === undefined && match[2] === undefined) return integerValue(BigInt(match[0]));
    return new JsonFraction(match[0]);
  }

  /** A JSON number written with a fraction or an exponent (`1.0`, `1e3`): never an integer
   * field's value, even when its value is whole, as the Python models (strict integers) read
   * it. Kept as its text. */
  class JsonFraction {
    constructor(text) {
      this.text = text;
    }

    toJSON() {
      return Number(this.text);
    }
  }

  function enter(parser) {
    parser.depth++;
    if (parser.depth > JSON_DEPTH_MAX) jsonFail(parser, "nested deeper than " + JSON_DEPTH_MAX);
    parser.offset++;
    skipSpace(parser);
  }

  function parseJsonObject(parser) {
    enter(parser);
    const object = Object.create(null);
    const seen = new Set();
    if (parser.text[parser.offset] === "}") {
      parser.offset++;
      parser.depth--;
      return Object.assign({}, object);
    }
    for (;;) {
      if (parser.text[parser.offset] !== '"') jsonFail(parser, "expected a key");
      const key = parseJsonString(parser);
      if (seen.has(key)) {
        fail("format", "a JSON object repeats the key " + JSON.stringify(key));
      }
      seen.add(key);
      skipSpace(parser);
      if (parser.text[parser.offset] !== ":") jsonFail(parser, "expected ':'");
      parser.offset++;
      skipSpace(parser);
      object[key] = parseJsonValue(parser);
      skipSpace(parser);
      const next = parser.text[parser.offset++];
      if (next === "}") break;
      if (next !== ",") jsonFail(parser, "expected ',' or '}'");
      skipSpace(parser);
    }
    parser.depth--;
    const result = {};
    for (const key of Object.keys(object)) {
      Object.defineProperty(result, key, {
        value: object[key],
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return result;
  }

  function parseJsonArray(parser) {
    enter(parser);
    const array = [];
    if (parser.text[parser.offset] === "]") {
      parser.offset++;
      parser.depth--;
      return array;
    }
    for (;;) {
      array.push(parseJsonValue(parser));
      skipSpace(parser);
      const next = parser.text[parser.offset++];
      if (next === "]") break;
      if (next !== ",") jsonFail(parser, "expected ',' or ']'");
      skipSpace(parser);
    }
    parser.depth--;
    return array;
  }

  function parseJsonString(parser) {
    parser.offset++;
    let text = "";
    for (;;) {
      if (parser.offset >= parser.text.length) jsonFail(parser, "unterminated string");
      const character = parser.text[parser.offset++];
      if (character === '"') return text;
      if (character < " ") jsonFail(parser, "a control character in a string");
      if (character !== "\\") {
        text += character;
        continue;
      }
      const escape = parser.text[parser.offset++];
      const simple = {
        '"': '"',
        "\\": "\\",
        "/": "/",
        b: "\b",
        f: "\f",
        n: "\n",
        r: "\r",
        t: "\t",
      };
      if (escape in simple) {
        text += simple[escape];
      } else if (escape === "u") {
        const digits = parser.text.slice(parser.offset, parser.offset + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(digits)) jsonFail(parser, "a bad \\u escape");
        text += String.fromCharCode(parseInt(digits, 16));
        parser.offset += 4;
      } else {
        jsonFail(parser, "a bad escape");
      }
    }
  }

  // --- models from their JSON form (docs/format.md §5, §5.10) --------------------------------
  //
  // Each reader takes the JSON form and returns the model's canonical form as a plain object
  // (exactly the fields the canonical map holds, absent optional fields left out), which
  // encodeCanonical turns into the bytes Python hashes. A wrong type, a missing or an unknown
  // field is refused at step "format", naming the field, as pydantic refuses it.

  const U63_MAX = (1n << 63n) - 1n;

  function describe(value) {
    if (value === null) return "null";
    if (value instanceof JsonFraction) return "the number " + value.text;
    if (Array.isArray(value)) return "an array";
    if (typeof value === "bigint") return "an integer";
    return typeof value === "object" ? "an object" : "a " + typeof value;
  }

  function formatFail(where, message) {
    fail("format", where + ": " + message);
  }

  function fields(value, where, required, optional) {
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      formatFail(where, "expected an object, got " + describe(value));
    }
    for (const name of Object.keys(value)) {
      if (!required.includes(name) && !(optional || []).includes(name)) {
        formatFail(where + "." + name, "unknown field");
      }
    }
    for (const name of required) {
      if (!Object.prototype.hasOwnProperty.call(value, name))
        formatFail(where + "." + name, "missing field");
    }
    return value;
  }

  function readInteger(value, where, minimum, maximum) {
    if (typeof value === "bigint") {
      formatFail(
        where,
        "the integer " +
          value +
          " is above 2^53: this verifier refuses it (a JavaScript number " +
          "cannot hold it exactly)",
      );
    }
    if (typeof value !== "number" || !Number.isInteger(value)) {
      formatFail(where, "expected an integer, got " + describe(value));
    }
    if (!Number.isSafeInteger(value)) {
      formatFail(where, "the integer " + value + " is beyond 2^53: this verifier refuses it");
    }
    if (value < minimum || value > maximum) {
      formatFail(where, "expected an integer from " + minimum + " to " + maximum);
    }
    return value;
  }

  const SAFE_MAX = Number.MAX_SAFE_INTEGER;

  function readHeight(value, where) {
    return readInteger(value, where, 1, SAFE_MAX);
  }

  function readCount(value, where) {
    return readInteger(value, where, 0, SAFE_MAX);
  }

  function readHex(value, where, length, lengthMax) {
    if (typeof value !== "string")
      formatFail(where, "expected lowercase hex, got " + describe(value));
    if (!/^(?:[0-9a-f]{2})*$/.test(value)) formatFail(where, "expected lowercase hex");
    const size = value.length / 2;
    if (length !== null && size !== length)
      formatFail(where, "expected " + length + " bytes, got " + size);
    if (lengthMax !== null && size > lengthMax)
      formatFail(where, "at most " + lengthMax + " bytes, got " + size);
    return fromHex(value);
  }

  function readHash(value, where) {
    return readHex(value, where, 32, null);
  }

  function readText(value, where) {
    if (typeof value !== "string") formatFail(where, "expected text, got " + describe(value));
    if (!isWellFormed(value)) formatFail(where, "text that is not valid Unicode");
    return value;
  }

  function readPattern(value, where, pattern, lengthMax) {
    readText(value, where);
    if (!pattern.test(value) || (lengthMax && value.length > lengthMax)) {
      formatFail(where, "does not match " + pattern);
    }
    return value;
  }

  const MEMBER_ID = /^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$/;
  const NAME = /^[a-z][a-z0-9_]{0,31}$/;
  const ENDPOINT = /^[A-Za-z0-9.\-[\]:]{1,253}:[0-9]{1,5}$/;
  const VERSION = /^[0-9]+\.[0-9]+(\.[0-9]+)?$/;
  const SIRET = /^[0-9]{14}$/;
  const WHITE_SPACE = /^[\u0020\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$/;

  function isMemberId(value) {
    return typeof value === "string" && MEMBER_ID.test(value);
  }

  /** A DisplayName: 1 to 128 code points, no control character, no white space at its ends. */
  function displayNameProblem(value) {
    if (typeof value !== "string") return "expected text, got " + describe(value);
    if (!isWellFormed(value)) return "text that is not valid Unicode";
    const points = Array.from(value);
    if (points.length < 1 || points.length > 128) return "1 to 128 characters";
    for (const point of points) {
      const code = point.codePointAt(0);
      if (code < 0x20 || (code >= 0x7f && code < 0xa0)) return "control characters are not allowed";
    }
    if (WHITE_SPACE.test(points[0]) || WHITE_SPACE.test(points[points.length - 1])) {
      return "no leading or trailing white space";
    }
    return null;
  }

  function readDisplayName(value, where) {
    const problem = displayNameProblem(value);
    if (problem !== null) formatFail(where, problem);
    return value;
  }

  /** `ed25519:<43 base64url characters>` in its canonical spelling, to 32 raw bytes. */
  function publicKeyFromText(text) {
    if (typeof text !== "string" || !text.startsWith("ed25519:")) return null;
    const body = text.slice(8);
    if (!/^[A-Za-z0-9_-]{43}$/.test(body)) return null;
    const standard = body.replace(/-/g, "+").replace(/_/g, "/") + "=";
    const raw = base64DecodeCanonical(standard);
    return raw !== null && raw.length === 32 ? raw : null;
  }

  function publicKeyToText(key) {
    return "ed25519:" + base64Encode(key, BASE64URL, false);
  }

  function readPublicKey(value, where) {
    const raw = publicKeyFromText(value);
    if (raw === null)
      formatFail(where, "expected a public key as ed25519:<43 base64url characters>");
    if (!isAcceptablePublicKey(raw)) {
      formatFail(where, "not an acceptable Ed25519 public key (wrong length, or small order)");
    }
    return raw;
  }

  function readArray(value, where, minimum, maximum) {
    if (!Array.isArray(value)) formatFail(where, "expected an array, got " + describe(value));
    if (value.length < minimum || value.length > maximum) {
      formatFail(where, "expected " + minimum + " to " + maximum + " items, got " + value.length);
    }
    return value;
  }

  function readMember(value, where) {
    fields(value, where, ["id", "name", "public_key", "endpoint"], ["siret"]);
    const member = {
      id: readPattern(value.id, where + ".id", MEMBER_ID),
      name: readDisplayName(value.name, where + ".name"),
      public_key: readPublicKey(value.public_key, where + ".public_key"),
      endpoint: readPattern(value.endpoint, where + ".endpoint", ENDPOINT, 260),
    };
    if (value.siret !== undefined && value.siret !== null) {
      member.siret = readPattern(value.siret, where + ".siret", SIRET);
    }
    return member;
  }

  function readMembers(value, where, minimum) {
    return readArray(value, where, minimum, 256).map((member, index) =>
      readMember(member, where + "." + index),
    );
  }

  const PARAMETER_RANGES = {
    block_transactions_max: [1, 100000, 2000],
    block_bytes_max: [1024, 12 * 1024 * 1024, 8 * 1024 * 1024],
    transaction_bytes_max: [256, 65535, 16384],
    view_timeout_ms: [100, 600000, 2000],
    timestamp_drift_ms_max: [100, 3600000, 10000],
    governance_threshold_percent: [51, 100, 67],
    proposal_lifetime_blocks: [1, 10000000, 10000],
  };

  /** The genesis from its JSON file, with the defaults of §5.5 filled in. */
  function readGenesis(value) {
    const where = "genesis";
    fields(
      value,
      where,
      ["consortium", "created_at_ms", "members"],
      ["format_version", "parameters", "contracts"],
    );
    const parameters = {};
    const given = value.parameters === undefined ? {} : value.parameters;
    fields(given, where + ".parameters", [], Object.keys(PARAMETER_RANGES));
    for (const [name, [minimum, maximum, fallback]] of Object.entries(PARAMETER_RANGES)) {
      parameters[name] =
        given[name] === undefined
          ? fallback
          : readInteger(given[name], where + ".parameters." + name, minimum, maximum);
    }
    if (parameters.block_bytes_max < parameters.transaction_bytes_max) {
      formatFail(where + ".parameters", "block_bytes_max must be at least transaction_bytes_max");
    }
    const contracts = readArray(
      value.contracts === undefined ? [] : value.contracts,
      where + ".contracts",
      0,
      64,
    ).map((contract, index) => {
      const at = where + ".contracts." + index;
      fields(contract, at, ["name", "version"]);
      return {
        name: readPattern(contract.name, at + ".name", NAME),
        version: readPattern(contract.version, at + ".version", VERSION, 32),
      };
    });
    const genesis = {
      format_version:
        value.format_version === undefined
          ? 1
          : readInteger(value.format_version, where + ".format_version", 1, 2),
      consortium: readDisplayName(value.consortium, where + ".consortium"),
      created_at_ms: readCount(value.created_at_ms, where + ".created_at_ms"),
      members: readMembers(value.members, where + ".members", 1),
      parameters: parameters,
      contracts: contracts,
    };
    for (const [label, values] of [
      ["members: member id", genesis.members.map((member) => member.id)],
      ["members: public key", genesis.members.map((member) => toHex(member.public_key))],
      ["members: endpoint", genesis.members.map((member) => member.endpoint)],
      ["contracts: contract name", genesis.contracts.map((contract) => contract.name)],
    ]) {
      const duplicate = values.find((item, index) => values.indexOf(item) !== index);
      if (duplicate !== undefined)
        formatFail(where, label + " " + JSON.stringify(duplicate) + " appears twice");
    }
    return genesis;
  }

  function readHeader(value, where) {
    const names = [
      "chain_id",
      "height",
      "prev_hash",
      "timestamp_ms",
      "proposer",
      "view",
      "tx_count",
      "tx_root",
      "state_root",
      "members_hash",
    ];
    fields(value, where, names, ["log_size", "log_root"]);
    const hasSize = value.log_size !== undefined && value.log_size !== null;
    const hasRoot = value.log_root !== undefined && value.log_root !== null;
    if (hasSize !== hasRoot || (value.log_size === undefined) !== (value.log_root === undefined)) {
      formatFail(where, "log_size and log_root come together, or not at all");
    }
    const header = {
      chain_id: readHash(value.chain_id, where + ".chain_id"),
      height: readHeight(value.height, where + ".height"),
      prev_hash: readHash(value.prev_hash, where + ".prev_hash"),
      timestamp_ms: readCount(value.timestamp_ms, where + ".timestamp_ms"),
      proposer: readPattern(value.proposer, where + ".proposer", MEMBER_ID),
      view: readCount(value.view, where + ".view"),
      tx_count: readCount(value.tx_count, where + ".tx_count"),
      tx_root: readHash(value.tx_root, where + ".tx_root"),
      state_root: readHash(value.state_root, where + ".state_root"),
      members_hash: readHash(value.members_hash, where + ".members_hash"),
    };
    if (hasSize) {
      header.log_size = readCount(value.log_size, where + ".log_size");
      header.log_root = readHash(value.log_root, where + ".log_root");
    }
    return header;
  }

  function readCertificate(value, where) {
    fields(value, where, ["height", "view", "block_hash", "signatures"]);
    const signatures = readArray(value.signatures, where + ".signatures", 1, 256).map(
      (entry, index) => {
        const at = where + ".signatures." + index;
        readArray(entry, at, 2, 2);
        return [
          readPattern(entry[0], at + ".0", MEMBER_ID),
          readHex(entry[1], at + ".1", 64, null),
        ];
      },
    );
    for (let index = 1; index < signatures.length; index++) {
      if (!(signatures[index - 1][0] < signatures[index][0])) {
        formatFail(where, "signatures must be sorted by member id, each member once");
      }
    }
    return {
      height: readHeight(value.height, where + ".height"),
      view: readCount(value.view, where + ".view"),
      block_hash: readHash(value.block_hash, where + ".block_hash"),
      signatures: signatures,
    };
  }

  function readStateProof(value, where) {
    fields(value, where, ["siblings", "other_key_path", "other_value_hash"]);
    const otherPath =
      value.other_key_path === null
        ? null
        : readHash(value.other_key_path, where + ".other_key_path");
    const otherHash =
      value.other_value_hash === null
        ? null
        : readHash(value.other_value_hash, where + ".other_value_hash");
    if ((otherPath === null) !== (otherHash === null)) {
      formatFail(where, "other_key_path and other_value_hash go together");
    }
    return {
      siblings: readArray(value.siblings, where + ".siblings", 0, 256).map((sibling, index) =>
        readHash(sibling, where + ".siblings." + index),
      ),
      other_key_path: otherPath,
      other_value_hash: otherHash,
    };
  }

  const MEMBER_SET_CHANGES_MAX = 4096;

  function readMemberSetChange(value, where) {
    fields(value, where, ["header", "certificate", "members", "proof"]);
    return {
      header: readHeader(value.header, where + ".header"),
      certificate: readCertificate(value.certificate, where + ".certificate"),
      members: readMembers(value.members, where + ".members", 1),
      proof: readStateProof(value.proof, where + ".proof"),
    };
  }

  function readMemberSetChanges(value, where) {
    return readArray(value, where, 0, MEMBER_SET_CHANGES_MAX).map((change, index) =>
      readMemberSetChange(change, where + "." + index),
    );
  }

  function readOptionalValue(value, where, lengthMax) {
    return value === null ? null : readHex(value, where, null, lengthMax);
  }

  function readStatus(value, where) {
    fields(value, where, ["header", "certificate", "member_changes", "key", "value", "proof"]);
    return {
      header: readHeader(value.header, where + ".header"),
      certificate: readCertificate(value.certificate, where + ".certificate"),
      member_changes: readMemberSetChanges(value.member_changes, where + ".member_changes"),
      key: readHex(value.key, where + ".key", null, 1024),
      value: readOptionalValue(value.value, where + ".value", 256 * 1024),
      proof: readStateProof(value.proof, where + ".proof"),
    };
  }

  function readAuthority(value, where) {
    fields(value, where, ["parent", "entries"]);
    return {
      parent: readHeader(value.parent, where + ".parent"),
      entries: readArray(value.entries, where + ".entries", 1, 4).map((entry, index) => {
        const at = where + ".entries." + index;
        fields(entry, at, ["key", "value", "proof"]);
        return {
          key: readHex(entry.key, at + ".key", null, 1024),
          value: readOptionalValue(entry.value, at + ".value", 256 * 1024),
          proof: readStateProof(entry.proof, at + ".proof"),
        };
      }),
    };
  }

  const NOTE_BYTES_MAX = 64 * 1024;
  const PROOF_HASHES_MAX = 63;

  function readLog(value, where) {
    fields(value, where, ["index", "inclusion_proof", "checkpoint", "member_changes"]);
    const checkpoint = readText(value.checkpoint, where + ".checkpoint");
    if (checkpoint.length < 1 || checkpoint.length > NOTE_BYTES_MAX) {
      formatFail(where + ".checkpoint", "1 to " + NOTE_BYTES_MAX + " characters");
    }
    return {
      index: readCount(value.index, where + ".index"),
      inclusion_proof: readArray(
        value.inclusion_proof,
        where + ".inclusion_proof",
        0,
        PROOF_HASHES_MAX,
      ).map((hash, index) => readHash(hash, where + ".inclusion_proof." + index)),
      checkpoint: checkpoint,
      member_changes: readMemberSetChanges(value.member_changes, where + ".member_changes"),
    };
  }

  /** The receipt from its JSON form: "format" may be left out (it has one value); "status",
   * "authority" and "log" may be absent or null (none). */
  function readReceipt(value) {
    const where = "receipt";
    fields(
      value,
      where,
      [
        "chain_id",
        "transaction",
        "height",
        "position",
        "inclusion_proof",
        "header",
        "certificate",
        "member_changes",
      ],
      ["format", "status", "authority", "log"],
    );
    if (value.format !== undefined && value.format !== "sceau-receipt/v1") {
      formatFail(where + ".format", "expected 'sceau-receipt/v1'");
    }
    const optional = (name, reader) =>
      value[name] === undefined || value[name] === null
        ? null
        : reader(value[name], where + "." + name);
    return {
      format: "sceau-receipt/v1",
      chain_id: readHash(value.chain_id, where + ".chain_id"),
      transaction: readHex(value.transaction, where + ".transaction", null, 64 * 1024),
      height: readHeight(value.height, where + ".height"),
      position: readInteger(value.position, where + ".position", 0, 2 ** 31),
      inclusion_proof: readArray(value.inclusion_proof, where + ".inclusion_proof", 0, 64).map(
        (hash, index) => readHash(hash, where + ".inclusion_proof." + index),
      ),
      header: readHeader(value.header, where + ".header"),
      certificate: readCertificate(value.certificate, where + ".certificate"),
      member_changes: readMemberSetChanges(value.member_changes, where + ".member_changes"),
      status: optional("status", readStatus),
      authority: optional("authority", readAuthority),
      log: optional("log", readLog),
    };
  }

  // --- the transaction, from its canonical bytes (§5.6) ---------------------------------------

  const TRANSACTION_FIELDS = [
    "chain_id",
    "contract",
    "action",
    "args",
    "signer",
    "nonce",
    "expiry_height",
    "signature",
  ];
  const ARGUMENTS_DEPTH_MAX = 8;

  function isInteger(value) {
    return (typeof value === "number" && Number.isInteger(value)) || typeof value === "bigint";
  }

  /** The transaction model of `document` (a decoded Map), or a message saying what is wrong. */
  function transactionProblem(document) {
    if (!(document instanceof Map)) return "Transaction: expected a map";
    for (const key of document.keys()) {
      if (!TRANSACTION_FIELDS.includes(key))
        return "Transaction." + String(key) + ": unknown field";
    }
    for (const name of TRANSACTION_FIELDS) {
      if (!document.has(name)) return "Transaction: missing field '" + name + "'";
    }
    const get = (name) => document.get(name);
    const bytesOf = (name, length) =>
      get(name) instanceof Uint8Array && get(name).length === length
        ? null
        : "Transaction." + name + ": expected " + length + " bytes";
    const problems = [
      bytesOf("chain_id", 32),
      typeof get("contract") === "string" && NAME.test(get("contract"))
        ? null
        : "Transaction.contract: not a contract name",
      typeof get("action") === "string" && NAME.test(get("action"))
        ? null
        : "Transaction.action: not an action name",
      get("signer") instanceof Uint8Array && isAcceptablePublicKey(get("signer"))
        ? null
        : "Transaction.signer: not an acceptable Ed25519 public key (wrong length, or small order)",
      isInteger(get("nonce")) && BigInt(get("nonce")) >= 0n && BigInt(get("nonce")) <= INT_MAX
        ? null
        : "Transaction.nonce: expected an integer from 0 to 2^64 - 1",
      isInteger(get("expiry_height")) &&
      BigInt(get("expiry_height")) >= 1n &&
      BigInt(get("expiry_height")) <= U63_MAX
        ? null
        : "Transaction.expiry_height: expected an integer from 1 to 2^63 - 1",
      bytesOf("signature", 64),
    ];
    const found = problems.find((problem) => problem !== null);
    if (found) return found;
    const args = get("args");
    if (!(args instanceof Map)) return "Transaction.args: expected a map";
    for (const key of args.keys()) {
      if (typeof key !== "string") return "Transaction.args: keys are text";
    }
    try {
      const size = encodeCanonical(args, ARGUMENTS_DEPTH_MAX).length;
      if (size > 64 * 1024)
        return "Transaction.args: arguments take " + size + " bytes, over 65536";
    } catch (error) {
      return "Transaction.args: not canonically encodable: " + error.message;
    }
    return null;
  }

  function mapWithout(map, name) {
    const copy = new Map(map);
    copy.delete(name);
    return copy;
  }

  /** A decoded value in a plain form for people: maps as objects, bytes as hex, big integers
   * as decimal text. */
  function plain(value) {
    if (value instanceof Uint8Array) return toHex(value);
    if (typeof value === "bigint") return value.toString();
    if (Array.isArray(value)) return value.map(plain);
    if (value instanceof Map) {
      const object = {};
      for (const [key, item] of value) {
        const name = key instanceof Uint8Array ? toHex(key) : String(key);
        Object.defineProperty(object, name, {
          value: plain(item),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return object;
    }
    return value;
  }

  // --- Merkle trees: RFC 9162 (§6) and the state tree (§7) ------------------------------------

  /** True iff `proof` shows that `leaf` is leaf `index` of the tree of `size` leaves `rootHash`
   * (RFC 9162 §2.1.3.2; ledger.merkle.verify_inclusion). */
  async function verifyInclusion(leaf, index, size, proof, rootHash) {
    if (!(index >= 0 && index < size) || proof.length > 64) return false;
    let position = BigInt(index);
    let last = BigInt(size) - 1n;
    let computed = await sha256(concat(new Uint8Array([0]), leaf));
    for (const sibling of proof) {
      if (last === 0n) return false;
      if ((position & 1n) === 1n || position === last) {
        computed = await sha256(concat(new Uint8Array([1]), sibling, computed));
        while ((position & 1n) === 0n && position !== 0n) {
          position >>= 1n;
          last >>= 1n;
        }
      } else {
        computed = await sha256(concat(new Uint8Array([1]), computed, sibling));
      }
      position >>= 1n;
      last >>= 1n;
    }
    return last === 0n && equalBytes(computed, rootHash);
  }

  const EMPTY_STATE = new Uint8Array(32);

  function bitAt(path, depth) {
    return (path[depth >> 3] >> (7 - (depth & 7))) & 1;
  }

  function commonPrefixBits(left, right) {
    for (let depth = 0; depth < 256; depth++) {
      if (bitAt(left, depth) !== bitAt(right, depth)) return depth;
    }
    return 256;
  }

  /** True iff `proof` shows that `key` has `value` (null: no value) under the state root
   * `stateRoot` (§7.4; ledger.state.verify_state_proof). */
  async function verifyStateProof(stateRoot, key, value, proof) {
    const siblings = proof.siblings;
    if (siblings.length > 256) return false;
    if (siblings.length > 0 && equalBytes(siblings[siblings.length - 1], EMPTY_STATE)) return false;
    const path = await sha256(key);
    let current;
    if (value !== null) {
      if (proof.other_key_path !== null) return false;
      current = await sha256(concat(new Uint8Array([0]), path, await sha256(value)));
    } else if (proof.other_key_path === null) {
      current = EMPTY_STATE;
    } else {
      const otherPath = proof.other_key_path;
      if (equalBytes(otherPath, path)) return false;
      if (commonPrefixBits(otherPath, path) < siblings.length) return false;
      current = await sha256(concat(new Uint8Array([0]), otherPath, proof.other_value_hash));
    }
    for (let depth = siblings.length - 1; depth >= 0; depth--) {
      current = bitAt(path, depth)
        ? await sha256(concat(new Uint8Array([1]), siblings[depth], current))
        : await sha256(concat(new Uint8Array([1]), current, siblings[depth]));
    }
    return equalBytes(current, stateRoot);
  }

  // --- state keys (§7.5, §7.6, §7.9) ----------------------------------------------------------

  const MEMBERS_STATE_KEY = utf8("membership/members");

  function issuerStateKey(issuerId) {
    return concat(utf8("membership/issuer/"), utf8(issuerId));
  }

  function signerStateKey(publicKey) {
    return concat(utf8("membership/signer/"), publicKey);
  }

  /** The deeds act record's key: `deeds/act/` || canonical(issuer) || reference. */
  function actStateKey(issuer, reference) {
    return concat(utf8("deeds/act/"), encodeCanonical(issuer), utf8(reference));
  }

  /** A state key for messages: text where it is text, the raw key bytes as hex. */
  function describeKey(key) {
    for (const prefix of ["membership/signer/", "membership/issuer_key/"]) {
      const bytes = utf8(prefix);
      if (key.length >= bytes.length && equalBytes(key.subarray(0, bytes.length), bytes)) {
        return "'" + prefix + toHex(key.subarray(bytes.length)) + "'";
      }
    }
    return "'" + new TextDecoder("utf-8").decode(key) + "'";
  }

  /** The anchoring action receipts know (contracts/deeds.py RECEIPT_ANCHOR): a deeds `anchor`,
   * whose record is the act's, issued for its `issuer`, with the role `deeds.issue`. */
  const DEEDS_ANCHOR = {
    contract: "deeds",
    action: "anchor",
    role: "deeds.issue",
    recordKey(args) {
      const issuer = args.get("issuer");
      const reference = args.get("reference");
      if (typeof issuer !== "string" || typeof reference !== "string") return null;
      return actStateKey(issuer, reference);
    },
    principal(args) {
      return args.get("issuer");
    },
  };

  // --- the member set, quorums, certificates (§5.9, §7.8) -------------------------------------

  function quorumSize(count) {
    return count - Math.floor((count - 1) / 3);
  }

  async function membersHash(members) {
    return sha256(encodeCanonical(members));
  }

  async function blockHash(header) {
    return sha256(encodeCanonical(header));
  }

  /** Every reason why `certificate` does not certify `header` for `members`
   * (ledger.audit.certificate_failures), as [field, detail] pairs. */
  async function certificateFailures(certificate, header, hash, members, chainId) {
    const found = [];
    if (certificate.height !== header.height) {
      found.push([
        "certificate.height",
        "is " + certificate.height + ", the block's is " + header.height,
      ]);
    }
    if (!equalBytes(certificate.block_hash, hash)) {
      found.push(["certificate.block_hash", "is not the hash of the block's header"]);
    }
    if (certificate.view < header.view) {
      found.push([
        "certificate.view",
        certificate.view + " is before the view " + header.view + " the block was proposed in",
      ]);
    }
    const byId = new Map(members.map((member) => [member.id, member]));
    const payload = encodeCanonical([certificate.height, certificate.view, certificate.block_hash]);
    const signers = new Set();
    let previous = "";
    for (const [memberId, signature] of certificate.signatures) {
      if (signers.has(memberId)) {
        found.push(["certificate", "'" + memberId + "' signs twice"]);
        continue;
      }
      if (memberId < previous)
        found.push(["certificate", "the signatures are not sorted by member id"]);
      previous = memberId;
      const member = byId.get(memberId);
      if (member === undefined) {
        found.push(["certificate", "'" + memberId + "' is not a member at this height"]);
      } else if (
        !(await verifySigned(member.public_key, TAG_COMMIT, chainId, payload, signature))
      ) {
        found.push(["certificate", "bad signature from '" + memberId + "'"]);
      } else {
        signers.add(memberId);
      }
    }
    const needed = quorumSize(members.length);
    if (signers.size < needed) {
      found.push([
        "certificate",
        signers.size +
          " valid signatures of distinct members, " +
          needed +
          " needed of " +
          members.length +
          " members",
      ]);
    }
    return found;
  }

  /** Every rule a certified header must hold without its parent or replay
   * (ledger.audit.block_rule_failures), header fields first. */
  async function blockRuleFailures(
    header,
    hash,
    certificate,
    transactions,
    members,
    context,
    afterMs,
    after,
  ) {
    const found = [];
    if (!equalBytes(header.chain_id, context.chainId)) {
      found.push(["header.chain_id", "is not the chain_id of this genesis"]);
    }
    if (header.timestamp_ms <= afterMs)
      found.push(["header.timestamp_ms", "is not after " + after]);
    if (!equalBytes(header.members_hash, await membersHash(members))) {
      found.push(["header.members_hash", "is not the hash of the member set in force"]);
    }
    const primary = members[header.view % members.length].id;
    if (header.proposer !== primary) {
      found.push([
        "header.proposer",
        "is '" +
          header.proposer +
          "', the primary of view " +
          header.view +
          " is '" +
          primary +
          "'",
      ]);
    }
    const listed = context.genesis.contracts.map((contract) => contract.name);
    for (const [position, transaction] of transactions) {
      const name = "transaction " + position;
      if (!equalBytes(transaction.get("chain_id"), context.chainId)) {
        found.push([name, "chain_id: signed for another chain"]);
      }
      if (transaction.get("expiry_height") < header.height) {
        found.push([
          name,
          "expiry_height: " +
            transaction.get("expiry_height") +
            " is below the block's height " +
            header.height,
        ]);
      }
      if (!listed.includes(transaction.get("contract"))) {
        found.push([
          name,
          "contract: '" + transaction.get("contract") + "' is not listed in the genesis",
        ]);
      }
    }
    return found.concat(
      await certificateFailures(certificate, header, hash, members, context.chainId),
    );
  }

  /** The certified headers a receipt shows, checked in increasing height order
   * (ledger.receipt._ShownHeaders). */
  class ShownHeaders {
    constructor(context) {
      this.context = context;
      this.shown = new Map();
    }

    async check(header, certificate, members, step, transactions, checks) {
      const height = header.height;
      const hash = await blockHash(header);
      const same = this.shown.get(height);
      if (same !== undefined && !equalBytes(same.hash, hash)) {
        fail(
          step,
          "header: another certified header of height " +
            height +
            " is in this receipt (a quorum certified two blocks at one height)",
        );
      }
      let parent = null;
      for (const shown of this.shown.values()) {
        if (
          shown.header.height < height &&
          (parent === null || shown.header.height > parent.header.height)
        )
          parent = shown;
      }
      const found = await blockRuleFailures(
        header,
        hash,
        certificate,
        transactions || [],
        members,
        this.context,
        parent === null ? this.context.genesis.created_at_ms : parent.header.timestamp_ms,
        parent === null
          ? "the genesis's created_at_ms"
          : "the time of block " + parent.header.height + " in this receipt",
      );
      if (found.length > 0) {
        let [field, detail] = found[0];
        if (field === "header.members_hash") {
          detail +=
            " at height " +
            height +
            " (a member-set change is missing from the receipt, or the header was altered)";
        }
        fail(step, field + ": " + detail);
      }
      this.shown.set(height, { header: header, hash: hash });
      if (checks) {
        const signers = certificate.signatures.map((entry) => entry[0]);
        checks.push({
          step: step,
          detail:
            "the header of block " +
            height +
            " is certified by " +
            signers.length +
            " of the " +
            members.length +
            " members in force (" +
            signers.join(", ") +
            "; " +
            quorumSize(members.length) +
            " needed), " +
            "names that member set, its proposer is the primary of view " +
            header.view +
            ", and its time is after the genesis and the lower blocks shown",
        });
      }
      return hash;
    }

    at(height) {
      const shown = this.shown.get(height);
      return shown === undefined ? null : shown;
    }
  }

  async function applyChange(members, change, shown, checks) {
    const height = change.header.height;
    await shown.check(
      change.header,
      change.certificate,
      members,
      "members at height " + height,
      [],
      checks,
    );
    const value = encodeCanonical(change.members);
    if (
      !(await verifyStateProof(change.header.state_root, MEMBERS_STATE_KEY, value, change.proof))
    ) {
      fail("members", "the member list of height " + height + " is not proven");
    }
    checks.push({
      step: "members",
      detail:
        "the member set changed at height " +
        (height + 1) +
        ": its " +
        change.members.length +
        " members are proven by the state of the certified block " +
        height,
    });
    return change.members;
  }

  async function followMemberSets(members, fromHeight, changes, targetHeight, shown, checks) {
    let previous = fromHeight - 1;
    for (const change of changes) {
      const height = change.header.height;
      if (height <= previous)
        fail("members", "member-set changes out of order at height " + height);
      if (height + 1 > targetHeight)
        fail("members", "a change at height " + height + " comes after the block");
      members = await applyChange(members, change, shown, checks);
      previous = height;
    }
    return members;
  }

  async function followToLogSize(members, previousHeight, changes, size, shown, checks) {
    for (const change of changes) {
      const height = change.header.height;
      if (height <= previousHeight)
        fail("members", "member-set changes out of order at height " + height);
      const logSize = change.header.log_size;
      if (logSize !== undefined && logSize > size) {
        fail(
          "members",
          "the change at height " +
            height +
            " comes after the checkpoint (log size " +
            logSize +
            " > " +
            size +
            ")",
        );
      }
      members = await applyChange(members, change, shown, checks);
      previousHeight = height;
    }
    return members;
  }

  // --- the signer's right (§7.10) ------------------------------------------------------------

  const ISSUER_FIELDS = [
    "id",
    "name",
    "siret",
    "public_key",
    "status",
    "admitted_height",
    "status_height",
  ];

  function readIssuerRecord(value) {
    let document;
    try {
      document = decodeCanonical(value);
    } catch (error) {
      fail("signer", "the issuer record does not decode: " + error.message);
    }
    const problem = (() => {
      if (!(document instanceof Map)) return "Issuer: expected a map";
      for (const key of document.keys())
        if (!ISSUER_FIELDS.includes(key)) return "Issuer." + String(key) + ": unknown field";
      for (const name of ISSUER_FIELDS)
        if (!document.has(name)) return "Issuer: missing field '" + name + "'";
      const get = (name) => document.get(name);
      if (!isMemberId(get("id"))) return "Issuer.id: not a member id";
      const nameProblem = displayNameProblem(get("name"));
      if (nameProblem !== null) return "Issuer.name: " + nameProblem;
      if (get("siret") !== null && !(typeof get("siret") === "string" && SIRET.test(get("siret"))))
        return "Issuer.siret: 14 digits or nil";
      if (!(get("public_key") instanceof Uint8Array && isAcceptablePublicKey(get("public_key"))))
        return "Issuer.public_key: not an acceptable Ed25519 public key";
      if (!["active", "suspended", "removed"].includes(get("status")))
        return "Issuer.status: active, suspended or removed";
      for (const name of ["admitted_height", "status_height"]) {
        if (!isInteger(get(name)) || BigInt(get(name)) < 1n || BigInt(get(name)) > U63_MAX)
          return "Issuer." + name + ": not a height";
      }
      return null;
    })();
    if (problem !== null) fail("signer", "the issuer record does not decode: " + problem);
    return document;
  }

  function issuerForPeople(record) {
    return {
      id: record.get("id"),
      name: record.get("name"),
      siret: record.get("siret"),
      public_key: publicKeyToText(record.get("public_key")),
      status: record.get("status"),
      admitted_height: plain(record.get("admitted_height")),
      status_height: plain(record.get("status_height")),
    };
  }

  async function provenValues(authority, header, allowed, shown) {
    const parent = authority.parent;
    if (parent.height !== header.height - 1) {
      fail(
        "signer",
        "the authority's header is of height " +
          parent.height +
          ", not the block's parent (" +
          (header.height - 1) +
          ")",
      );
    }
    const parentHash = await blockHash(parent);
    if (!equalBytes(parentHash, header.prev_hash)) {
      fail("signer", "the authority's header is not the block's parent (its prev_hash)");
    }
    const same = shown.at(parent.height);
    if (same !== null && !equalBytes(same.hash, parentHash)) {
      fail(
        "signer",
        "another header of height " +
          parent.height +
          " is certified in this receipt (a quorum certified a block on another parent)",
      );
    }
    const proven = [];
    for (const entry of authority.entries) {
      if (!allowed.some((key) => equalBytes(key, entry.key))) {
        fail(
          "signer",
          "the authority proves " +
            describeKey(entry.key) +
            ": neither the principal's issuer record nor the signer key's delegations",
        );
      }
      if (proven.some((item) => equalBytes(item.key, entry.key))) {
        fail("signer", "the authority proves " + describeKey(entry.key) + " twice");
      }
      if (!(await verifyStateProof(parent.state_root, entry.key, entry.value, entry.proof))) {
        fail(
          "signer",
          "the proof of " +
            describeKey(entry.key) +
            " does not verify under the state of block " +
            parent.height,
        );
      }
      proven.push({ key: entry.key, value: entry.value });
    }
    return proven;
  }

  function provenGet(proven, key) {
    return proven.find((item) => equalBytes(item.key, key));
  }

  function onlyNeeded(proven, needed) {
    const same =
      proven.length === needed.length &&
      proven.every((item, index) => equalBytes(item.key, needed[index]));
    if (same) return;
    const extra = proven.find((item) => !needed.some((key) => equalBytes(key, item.key)));
    if (extra !== undefined) {
      fail(
        "signer",
        "the authority proves " +
          describeKey(extra.key) +
          ", which this signer's right does not need",
      );
    }
    fail("signer", "the authority's entries are out of order");
  }

  function activeIssuer(proven, key, principal, height) {
    const entry = provenGet(proven, key);
    if (entry === undefined) {
      fail(
        "signer",
        "'" +
          principal +
          "' is not a member at height " +
          height +
          ", and the authority does not prove its issuer record (membership/issuer/" +
          principal +
          ")",
      );
    }
    if (entry.value === null) {
      fail(
        "signer",
        "'" + principal + "' is neither a member nor an admitted issuer at height " + height,
      );
    }
    const issuer = readIssuerRecord(entry.value);
    if (issuer.get("id") !== principal) {
      fail(
        "signer",
        "the issuer record is '" + issuer.get("id") + "''s, not '" + principal + "''s",
      );
    }
    if (issuer.get("status") !== "active") {
      fail(
        "signer",
        "the issuer '" +
          principal +
          "' is " +
          issuer.get("status") +
          " at height " +
          height +
          " (since height " +
          issuer.get("status_height") +
          "): its keys sign nothing",
      );
    }
    return issuer;
  }

  function delegated(value, principal, role, height) {
    if (value === null) fail("signer", "the signer key holds no delegation at height " + height);
    let delegations;
    try {
      delegations = decodeCanonical(value);
    } catch (error) {
      fail("signer", "the signer's delegations do not decode: " + error.message);
    }
    const entry = delegations instanceof Map ? delegations.get(principal) : undefined;
    if (entry === undefined || entry === null) {
      fail(
        "signer",
        "the signer key holds no delegation from '" + principal + "' at height " + height,
      );
    }
    const roles = entry instanceof Map ? entry.get("roles") : undefined;
    const expiry = entry instanceof Map ? entry.get("expiry_height") : undefined;
    if (
      !Array.isArray(roles) ||
      !roles.every((held) => typeof held === "string") ||
      !(expiry === null || isInteger(expiry))
    ) {
      fail("signer", "the signer's delegation from '" + principal + "' does not decode");
    }
    if (!roles.includes(role)) {
      fail(
        "signer",
        "the signer key may not " +
          role +
          " for '" +
          principal +
          "' (it holds " +
          JSON.stringify(roles) +
          ")",
      );
    }
    if (expiry !== null && height > expiry) {
      fail(
        "signer",
        "the signer's delegation from '" +
          principal +
          "' expired at height " +
          expiry +
          ", before the block's height " +
          height,
      );
    }
    return expiry === null ? null : plain(expiry);
  }

  /** The signer's right to sign the act for its principal (ledger.receipt._verify_signer). */
  async function verifySigner(receipt, transaction, anchor, members, shown, checks) {
    const authority = receipt.authority;
    if (anchor === null) {
      if (authority !== null)
        fail("signer", "only the receipt of an act issued for a principal carries an authority");
      return { right: null, issuer: null };
    }
    const principal = anchor.principal(transaction.get("args"));
    if (typeof principal !== "string") fail("signer", "the act does not name who it is issued for");
    const height = receipt.height;
    const signer = transaction.get("signer");
    const right = {
      principal: principal,
      role: anchor.role,
      kind: "member_node_key",
      height: height,
      provenAtHeight: null,
      expiryHeight: null,
    };
    const member = members.find((candidate) => candidate.id === principal);
    if (member !== undefined && equalBytes(member.public_key, signer)) {
      if (authority !== null) {
        fail(
          "signer",
          "the signer is the node key of member '" +
            principal +
            "', which the member sets prove: the receipt carries an authority it does not need",
        );
      }
      checks.push({
        step: "signer",
        detail:
          "the signer is the node key of member " +
          principal +
          " (" +
          member.name +
          "), in force at height " +
          height,
      });
      return { right: right, issuer: null };
    }
    if (authority === null) {
      if (member !== undefined) {
        right.kind = "not_proven";
        checks.push({
          step: "signer",
          detail:
            "the act is issued for member " +
            principal +
            " by another key; this receipt (made before authorities existed) does not prove " +
            "the delegation: the certifying quorum vouched for it",
        });
        return { right: right, issuer: null };
      }
      fail(
        "signer",
        "'" +
          principal +
          "' is not a member at height " +
          height +
          ", and the receipt does not prove that the signer may act for it (no authority: the " +
          "issuer's record and the signer's delegations in the state of block " +
          (height - 1) +
          " are missing)",
      );
    }
    right.provenAtHeight = height - 1;
    const issuerKey = issuerStateKey(principal);
    const signerKey = signerStateKey(signer);
    const proven = await provenValues(authority, receipt.header, [issuerKey, signerKey], shown);
    let needed = [signerKey];
    let issuer = null;
    if (member === undefined) {
      issuer = activeIssuer(proven, issuerKey, principal, height);
      if (equalBytes(issuer.get("public_key"), signer)) {
        onlyNeeded(proven, [issuerKey]);
        right.kind = "issuer_key";
        checks.push({
          step: "signer",
          detail:
            "the signer is the own key of the issuer " +
            principal +
            " (" +
            issuer.get("name") +
            "), active in the state of block " +
            (height - 1),
        });
        return { right: right, issuer: issuer };
      }
      needed = [issuerKey, signerKey];
    }
    const delegations = provenGet(proven, signerKey);
    if (delegations === undefined) {
      fail(
        "signer",
        "the signer is not '" +
          principal +
          "''s own key, and the receipt does not prove its delegations " +
          "(membership/signer/<key> in the state of block " +
          (height - 1) +
          ")",
      );
    }
    right.expiryHeight = delegated(delegations.value, principal, right.role, height);
    onlyNeeded(proven, needed);
    right.kind = "delegated";
    checks.push({
      step: "signer",
      detail:
        principal +
        " delegated " +
        right.role +
        " to the signer key" +
        (right.expiryHeight === null ? "" : " until height " + right.expiryHeight) +
        ", as the state of block " +
        (height - 1) +
        " proves" +
        (issuer === null ? "" : " (an active issuer)"),
    });
    return { right: right, issuer: issuer };
  }

  // --- the act's status (§7.9) ----------------------------------------------------------------

  async function verifyStatus(receipt, transaction, anchor, members, shown, checks) {
    const status = receipt.status;
    if (status === null) return { record: null, height: null };
    if (status.header.height < receipt.height)
      fail("status", "the status is certified before the act's block");
    const later = await followMemberSets(
      members,
      receipt.height,
      status.member_changes,
      status.header.height,
      shown,
      checks,
    );
    await shown.check(status.header, status.certificate, later, "status", [], checks);
    if (anchor === null) fail("status", "only the receipt of an anchored act carries a status");
    const key = anchor.recordKey(transaction.get("args"));
    if (key === null || !equalBytes(status.key, key))
      fail("status", "the proven key is not this act's record");
    if (
      !(await verifyStateProof(status.header.state_root, status.key, status.value, status.proof))
    ) {
      fail("status", "the state proof does not verify");
    }
    let record = null;
    if (status.value !== null) {
      try {
        record = decodeCanonical(status.value);
      } catch (error) {
        fail("status", "the record does not decode: " + error.message);
      }
    }
    checks.push({
      step: "status",
      detail:
        record === null
          ? "the state of the certified block " +
            status.header.height +
            " holds no record of this act"
          : "the act's record in the state of the certified block " +
            status.header.height +
            " is proven" +
            (record instanceof Map && record.has("status") ? ": " + record.get("status") : ""),
    });
    return { record: record, height: status.header.height };
  }

  // --- signed notes, checkpoints, witnesses (§10.1, §12; ledger/note.py, ledger/logcheck.py) ---

  const NOTE_SIGNATURES_MAX = 64;
  const SIZE_MAX = (1n << 63n) - 1n;
  const EM_DASH_PREFIX = "\u2014 ";
  /** The characters Python's str.isspace() calls white space (key names may hold none). */
  const PYTHON_SPACE =
    /[\t\n\v\f\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

  class NoteError extends Error {}

  function isValidKeyName(name) {
    if (typeof name !== "string" || name === "" || name.includes("+")) return false;
    for (const character of name) {
      if (character < " " || PYTHON_SPACE.test(character)) return false;
    }
    return true;
  }

  function checkNoteCharacters(text, what) {
    for (const character of text) {
      if (character < " " && character !== "\n") {
        throw new NoteError(what + " contains the control character " + JSON.stringify(character));
      }
    }
  }

  function decodeNoteBase64(text, what) {
    const raw = base64DecodeCanonical(text);
    if (raw === null) throw new NoteError(what + " is not valid base64 in its canonical form");
    return raw;
  }

  function parseDecimal(text, what) {
    if (!/^(?:0|[1-9][0-9]{0,18})$/.test(text) || BigInt(text) > SIZE_MAX) {
      throw new NoteError(
        what +
          " must be a decimal number without leading zeros, not " +
          JSON.stringify(text.slice(0, 40)),
      );
    }
    return BigInt(text);
  }

  function parseNote(text) {
    const bytes = utf8(text);
    if (bytes.length > NOTE_BYTES_MAX)
      throw new NoteError("a note is at most " + NOTE_BYTES_MAX + " bytes, not " + bytes.length);
    checkNoteCharacters(text, "the note");
    const split = text.lastIndexOf("\n\n");
    if (split < 0)
      throw new NoteError("a note's text is separated from its signatures by a blank line");
    const body = text.slice(0, split + 1);
    const block = text.slice(split + 2);
    if (block === "") throw new NoteError("a note carries at least one signature");
    if (!block.endsWith("\n"))
      throw new NoteError("a note's last signature line ends with a newline");
    const lines = block.slice(0, -1).split("\n");
    if (lines.length > NOTE_SIGNATURES_MAX)
      throw new NoteError("a note carries at most " + NOTE_SIGNATURES_MAX + " signatures");
    const signatures = lines.map((line) => {
      if (!line.startsWith(EM_DASH_PREFIX))
        throw new NoteError("a signature line starts with an em dash and a space");
      const parts = line.slice(EM_DASH_PREFIX.length).split(" ");
      if (parts.length !== 2)
        throw new NoteError("a signature line is '\u2014 <key name> <base64 signature>'");
      const [name, blobText] = parts;
      if (!isValidKeyName(name))
        throw new NoteError(
          JSON.stringify(name.slice(0, 80)) + " is not a valid key name (non-empty, no space or +)",
        );
      const blob = decodeNoteBase64(blobText, "the signature of " + name.slice(0, 80));
      if (blob.length <= 4)
        throw new NoteError(
          "the signature of " + name.slice(0, 80) + " is shorter than a key id and one byte",
        );
      const keyId = ((blob[0] << 24) | (blob[1] << 16) | (blob[2] << 8) | blob[3]) >>> 0;
      return { name: name, keyId: keyId, signature: blob.slice(4) };
    });
    return { text: body, signatures: signatures };
  }

  function parseCheckpointText(text) {
    if (!text.endsWith("\n")) throw new NoteError("a checkpoint's text ends with a newline");
    const lines = text.slice(0, -1).split("\n");
    if (lines.length < 3)
      throw new NoteError("a checkpoint has at least three lines: origin, size, root");
    if (lines.some((line) => line === "")) throw new NoteError("a checkpoint has no empty line");
    const size = parseDecimal(lines[1], "a checkpoint's size");
    const rootHash = decodeNoteBase64(lines[2], "a checkpoint's root");
    if (rootHash.length !== 32) throw new NoteError("a checkpoint's root is a 32-byte hash");
    if (size > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new NoteError("a checkpoint's size above 2^53 is refused by this verifier");
    }
    return { origin: lines[0], size: Number(size), root: rootHash };
  }

  async function noteKeyId(name, type, publicKey) {
    const digest = await sha256(concat(utf8(name), new Uint8Array([10, type]), publicKey));
    return ((digest[0] << 24) | (digest[1] << 16) | (digest[2] << 8) | digest[3]) >>> 0;
  }

  async function noteKey(name, type, publicKey, label) {
    return {
      name: name,
      type: type,
      publicKey: publicKey,
      keyId: await noteKeyId(name, type, publicKey),
      label: label,
    };
  }

  function keyIdHex(keyId) {
    return keyId.toString(16).padStart(8, "0");
  }

  /** A witness's verifier-key text `<name>+<key id>+base64(0x04 || key)` (parse_vkey). */
  async function parseVkey(text) {
    if (typeof text !== "string" || text.length > 1024)
      throw new NoteError("a verifier key is a text of at most 1024 characters");
    const first = text.indexOf("+");
    const second = first < 0 ? -1 : text.indexOf("+", first + 1);
    if (second < 0) throw new NoteError("a verifier key has the form <name>+<key id>+<base64 key>");
    const name = text.slice(0, first);
    const keyIdText = text.slice(first + 1, second);
    if (!isValidKeyName(name))
      throw new NoteError(
        JSON.stringify(name.slice(0, 80)) + " is not a valid key name (non-empty, no space or +)",
      );
    if (!/^[0-9a-f]{8}$/.test(keyIdText))
      throw new NoteError("a verifier key's id is 8 lowercase hexadecimal digits");
    const material = decodeNoteBase64(text.slice(second + 1), "the verifier key's key material");
    if (material.length === 0) throw new NoteError("the verifier key has no key material");
    if (material[0] !== 0x01 && material[0] !== 0x04)
      throw new NoteError("unsupported key type 0x" + material[0].toString(16).padStart(2, "0"));
    if (material.length !== 33) throw new NoteError("an Ed25519 key is 32 bytes");
    const publicKey = material.slice(1);
    if (!isAcceptablePublicKey(publicKey))
      throw new NoteError("the public key is not an acceptable 32-byte Ed25519 key");
    const key = await noteKey(name, material[0], publicKey, name);
    if (key.keyId !== parseInt(keyIdText, 16))
      throw new NoteError("the key id " + keyIdText + " does not match the name, type and key");
    return key;
  }

  /** A witness policy from {keys: [vkey texts], quorum: K} (logcheck.WitnessPolicy); each
   * witness is called by its key name. */
  async function readWitnessPolicy(options) {
    if (options === null || typeof options !== "object" || !Array.isArray(options.keys)) {
      fail("witnesses", "a witness policy is {keys: [verifier keys], quorum: K}");
    }
    if (options.keys.length < 1 || options.keys.length > 32)
      fail("witnesses", "a witness policy names 1 to 32 witnesses");
    const keys = [];
    for (const text of options.keys) {
      try {
        keys.push(await parseVkey(text));
      } catch (error) {
        if (!(error instanceof NoteError)) throw error;
        fail("witnesses", "a witness key: " + error.message);
      }
    }
    for (const key of keys) {
      if (key.type !== 0x04)
        fail("witnesses", "witness " + key.name + ": its key is not a cosignature/v1 key (0x04)");
      if (keys.filter((other) => other.name === key.name).length > 1)
        fail("witnesses", "a witness policy names each witness once");
    }
    const quorum =
      options.quorum === undefined || options.quorum === null ? keys.length : options.quorum;
    if (!Number.isInteger(quorum) || quorum < 1 || quorum > keys.length) {
      fail(
        "witnesses",
        "the witness quorum is between 1 and the " + keys.length + " witnesses named",
      );
    }
    return { keys: keys, quorum: quorum };
  }

  async function noteSignatureVerifies(key, text, signature) {
    if (key.type === 0x01) return verifyRaw(key.publicKey, utf8(text), signature);
    if (signature.length !== 72) return false;
    const timestamp = readUnsigned({ bytes: signature, offset: 0 }, 8);
    if (timestamp > SIZE_MAX) return false;
    const message = utf8("cosignature/v1\ntime " + timestamp.toString() + "\n" + text);
    return verifyRaw(key.publicKey, message, signature.subarray(8));
  }

  /** The keys of `keys` whose signature of `note` verifies, each once, in note order
   * (ledger.note.verify_note). */
  async function verifyNote(note, keys) {
    const known = new Map();
    for (const key of keys) {
      const id = key.name + "+" + key.keyId;
      const already = known.get(id);
      if (
        already !== undefined &&
        !(already.type === key.type && equalBytes(already.publicKey, key.publicKey))
      ) {
        throw new NoteError("two verifier keys are both " + key.name + "+" + keyIdHex(key.keyId));
      }
      if (already === undefined) known.set(id, key);
    }
    const verified = [];
    for (const signature of note.signatures) {
      const key = known.get(signature.name + "+" + signature.keyId);
      if (key === undefined) continue;
      if (!(await noteSignatureVerifies(key, note.text, signature.signature))) {
        throw new NoteError(
          "the signature of " + key.name + "+" + keyIdHex(key.keyId) + " does not verify",
        );
      }
      if (!verified.includes(key)) verified.push(key);
    }
    if (verified.length === 0) throw new NoteError("no signature of the note is from a known key");
    return verified;
  }

  /** ledger.logcheck.verify_checkpoint: a checkpoint of `origin` signed by a quorum of
   * `members`, and with a policy cosigned by enough of its witnesses. */
  async function verifyCheckpoint(note, origin, members, policy) {
    let checkpoint;
    try {
      checkpoint = parseCheckpointText(note.text);
    } catch (error) {
      if (!(error instanceof NoteError)) throw error;
      fail("checkpoint", error.message);
    }
    if (checkpoint.origin !== origin) {
      fail(
        "checkpoint",
        "its origin is " +
          JSON.stringify(checkpoint.origin.slice(0, 80)) +
          ", not this log's '" +
          origin +
          "'",
      );
    }
    const keys = [];
    for (const member of members)
      keys.push(await noteKey(origin, 0x01, member.public_key, member.id));
    let verified;
    try {
      verified = await verifyNote(note, keys);
    } catch (error) {
      if (!(error instanceof NoteError)) throw error;
      fail("quorum", "the members' signatures: " + error.message);
    }
    const signers = verified.map((key) => key.label);
    const needed = quorumSize(members.length);
    if (signers.length < needed) {
      fail(
        "quorum",
        signers.length +
          " of the " +
          members.length +
          " members signed it (" +
          signers.join(", ") +
          "); a checkpoint needs " +
          needed,
      );
    }
    let witnesses = [];
    if (policy !== null) {
      const known = new Set(policy.keys.map((key) => key.name + "+" + key.keyId));
      if (note.signatures.some((signature) => known.has(signature.name + "+" + signature.keyId))) {
        try {
          witnesses = (await verifyNote(note, policy.keys)).map((key) => key.label);
        } catch (error) {
          if (!(error instanceof NoteError)) throw error;
          fail("witnesses", "a cosignature: " + error.message);
        }
      }
      if (witnesses.length < policy.quorum) {
        const named = policy.keys.map((key) => key.label).join(", ");
        fail(
          "witnesses",
          witnesses.length +
            " of the witnesses " +
            named +
            " cosigned this checkpoint" +
            (witnesses.length ? " (" + witnesses.join(", ") + ")" : "") +
            "; the policy needs " +
            policy.quorum,
        );
      }
    }
    return {
      checkpoint: checkpoint,
      signers: signers,
      members: members.length,
      witnesses: witnesses,
    };
  }

  /** The receipt's place in the log of every act (ledger.receipt._verify_log). */
  async function verifyLog(receipt, members, shown, policy, context, checks) {
    const log = receipt.log;
    if (log === null) {
      if (policy !== null) {
        fail(
          "witnesses",
          "the receipt carries no checkpoint (no 'log' field), so no witness cosigned " +
            "anything it shows: ask a node that keeps checkpoints for a newer receipt",
        );
      }
      return null;
    }
    const header = receipt.header;
    if (header.log_size !== undefined) {
      const expected = header.log_size - header.tx_count + receipt.position;
      if (log.index !== expected) {
        fail(
          "log",
          "index " +
            log.index +
            " is not the act's place in the log, " +
            expected +
            " (the certified header's log_size - tx_count + position)",
        );
      }
    }
    let note;
    let checkpoint;
    try {
      note = parseNote(log.checkpoint);
      checkpoint = parseCheckpointText(note.text);
    } catch (error) {
      if (!(error instanceof NoteError)) throw error;
      fail("checkpoint", error.message);
    }
    if (log.index >= checkpoint.size) {
      fail(
        "log",
        "index " + log.index + " is not in the checkpoint's log of size " + checkpoint.size,
      );
    }
    const later = await followToLogSize(
      members,
      receipt.height - 1,
      log.member_changes,
      checkpoint.size,
      shown,
      checks,
    );
    const verified = await verifyCheckpoint(
      note,
      "sceau/" + toHex(receipt.chain_id),
      later,
      policy,
    );
    if (
      !(await verifyInclusion(
        receipt.transaction,
        log.index,
        checkpoint.size,
        log.inclusion_proof,
        checkpoint.root,
      ))
    ) {
      fail("log", "the transaction is not leaf " + log.index + " under the checkpoint's root");
    }
    checks.push({
      step: "checkpoint",
      detail:
        "the checkpoint of the log of every act at size " +
        checkpoint.size +
        " is signed by " +
        verified.signers.length +
        " of the " +
        verified.members +
        " members in force (" +
        verified.signers.join(", ") +
        ")" +
        (policy === null
          ? ""
          : " and cosigned by the witnesses " +
            verified.witnesses.join(", ") +
            " (" +
            policy.quorum +
            " needed)"),
    });
    checks.push({
      step: "log",
      detail: "the transaction is entry " + log.index + " of the log under that checkpoint",
    });
    return verified;
  }

  // --- the receipt ----------------------------------------------------------------------------

  function asObject(value, what) {
    if (typeof value === "string") return parseJson(value);
    if (value === null || typeof value !== "object")
      fail("format", what + ": expected an object or JSON text");
    return value;
  }

  async function chainIdBytes(genesis) {
    let bytes;
    try {
      bytes = encodeCanonical(genesis);
    } catch (error) {
      fail("format", "genesis: " + error.message);
    }
    return sha256(bytes);
  }

  /** The chain_id (hex) of a genesis given in its JSON form (an object or the file's text). */
  async function chainId(genesis) {
    return toHex(await chainIdBytes(readGenesis(asObject(genesis, "genesis"))));
  }

  /** Check every link of `receipt` from `genesis` (ledger.receipt.verify_receipt); throws a
   * ReceiptError naming the failed step, or returns what the receipt proved. */
  async function verifyReceipt(receiptDocument, genesisDocument, options) {
    options = options || {};
    const genesis = readGenesis(asObject(genesisDocument, "genesis"));
    const receipt = readReceipt(asObject(receiptDocument, "receipt"));
    const policy =
      options.witnesses === undefined || options.witnesses === null
        ? null
        : await readWitnessPolicy(options.witnesses);
    const documentBytes =
      options.document === undefined || options.document === null ? null : options.document;
    if (documentBytes !== null && !(documentBytes instanceof Uint8Array))
      fail("format", "the document must be a Uint8Array");
    const checks = [];
    const chainIdValue = await chainIdBytes(genesis);
    const context = { genesis: genesis, chainId: chainIdValue };

    if (!equalBytes(receipt.chain_id, chainIdValue))
      fail("chain", "the receipt is for another consortium than this genesis");
    checks.push({
      step: "chain",
      detail:
        "the receipt is for the consortium of this genesis, " +
        genesis.consortium +
        " (chain " +
        toHex(chainIdValue) +
        ")",
    });

    let transaction;
    try {
      transaction = decodeCanonical(receipt.transaction);
    } catch (error) {
      fail("transaction", "does not decode: " + error.message);
    }
    const problem = transactionProblem(transaction);
    if (problem !== null) fail("transaction", "does not decode: " + problem);
    if (!equalBytes(transaction.get("chain_id"), chainIdValue))
      fail("transaction", "signed for another consortium");
    const txId = await sha256(encodeCanonical(mapWithout(transaction, "signature")));
    const signatureValid = await verifySigned(
      transaction.get("signer"),
      TAG_TRANSACTION,
      transaction.get("chain_id"),
      txId,
      transaction.get("signature"),
    );
    if (!signatureValid) fail("transaction", "the signature does not verify");
    checks.push({
      step: "transaction",
      detail:
        "the transaction " +
        toHex(txId) +
        " is canonically encoded and its signature by " +
        publicKeyToText(transaction.get("signer")) +
        " verifies",
    });

    const shown = new ShownHeaders(context);
    const members = await followMemberSets(
      genesis.members,
      1,
      receipt.member_changes,
      receipt.height,
      shown,
      checks,
    );
    const hash = await shown.check(
      receipt.header,
      receipt.certificate,
      members,
      "block",
      [[receipt.position, transaction]],
      checks,
    );
    if (receipt.header.height !== receipt.height)
      fail("block", "the header is of height " + receipt.header.height);

    const included = await verifyInclusion(
      receipt.transaction,
      receipt.position,
      receipt.header.tx_count,
      receipt.inclusion_proof,
      receipt.header.tx_root,
    );
    if (!included) fail("inclusion", "the transaction is not in the block's tx_root");
    checks.push({
      step: "inclusion",
      detail:
        "the transaction is entry " +
        receipt.position +
        " of the " +
        receipt.header.tx_count +
        " transactions of block " +
        receipt.height +
        " (its tx_root)",
    });

    const args = transaction.get("args");
    const anchor =
      transaction.get("contract") === DEEDS_ANCHOR.contract &&
      transaction.get("action") === DEEDS_ANCHOR.action
        ? DEEDS_ANCHOR
        : null;
    const signed = await verifySigner(receipt, transaction, anchor, members, shown, checks);
    const act = anchor === null ? null : args;
    let matches = null;
    if (documentBytes !== null) {
      if (act === null) fail("document", "the transaction anchors no document");
      matches = equalBytes(await sha256(documentBytes), act.get("digest"));
      if (!matches) fail("document", "its SHA-256 is not the anchored digest");
      checks.push({
        step: "document",
        detail: "the document's SHA-256 is the anchored digest " + toHex(act.get("digest")),
      });
    }
    const status = await verifyStatus(receipt, transaction, anchor, members, shown, checks);
    const verified = await verifyLog(receipt, members, shown, policy, context, checks);

    const principal = signed.right === null ? null : signed.right.principal;
    const principalMember =
      principal === null ? undefined : members.find((member) => member.id === principal);
    return {
      txId: toHex(txId),
      chainId: toHex(chainIdValue),
      consortium: genesis.consortium,
      height: receipt.height,
      position: receipt.position,
      timestampMs: receipt.header.timestamp_ms,
      blockHash: toHex(hash),
      signers: receipt.certificate.signatures.map((entry) => entry[0]),
      members: members.length,
      quorum: quorumSize(members.length),
      contract: transaction.get("contract"),
      action: transaction.get("action"),
      act: act === null ? null : plain(act),
      documentMatches: matches,
      principal: principal,
      principalName:
        principalMember !== undefined
          ? principalMember.name
          : signed.issuer !== null
            ? signed.issuer.get("name")
            : null,
      issuer: signed.issuer === null ? null : issuerForPeople(signed.issuer),
      signerRight: signed.right,
      status: status.record === null ? null : plain(status.record),
      statusHeight: status.height,
      logIndex: receipt.log === null ? null : receipt.log.index,
      checkpoint:
        verified === null
          ? null
          : {
              origin: verified.checkpoint.origin,
              size: verified.checkpoint.size,
              root: toHex(verified.checkpoint.root),
              signers: verified.signers,
              witnesses: verified.witnesses,
            },
      checks: checks,
    };
  }

  const api = {
    ReceiptError: ReceiptError,
    EncodingError: EncodingError,
    STEPS: STEPS,
    DEFAULT_LIMITS: DEFAULT_LIMITS,
    parseJson: parseJson,
    verifyReceipt: verifyReceipt,
    chainId: chainId,
    sha256Hex: sha256Hex,
    decodeCanonical: decodeCanonical,
    encodeCanonical: encodeCanonical,
    verifyEd25519: verifyRaw,
    ed25519Supported: ed25519Supported,
    isAcceptablePublicKey: isAcceptablePublicKey,
  };

  if (typeof module === "object" && module.exports) module.exports = api;
  else root.SceauVerify = api;
})(typeof self !== "undefined" ? self : globalThis);
