import { base64Decode, base64Encode, bytesEqual, hexDecode, hexEncode, parseDecimal, utf8Decode, utf8Encode } from "./encoding.js";

const ascii = (s: string): Uint8Array => utf8Encode(s)!;

test.each([
  ["", ""],
  ["f", "Zg=="],
  ["fo", "Zm8="],
  ["foo", "Zm9v"],
  ["foob", "Zm9vYg=="],
  ["fooba", "Zm9vYmE="],
  ["foobar", "Zm9vYmFy"],
])("base64 of %j is %s (RFC 4648 §10)", (plain, b64) => {
  expect(base64Encode(ascii(plain))).toBe(b64);
  expect(base64Decode(b64)).toEqual(ascii(plain));
});

test("base64 round-trips every byte value", () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  for (let n = 0; n <= 256; n += 17) expect(base64Decode(base64Encode(all.subarray(0, n)))).toEqual(all.subarray(0, n));
});

test.each(["Zg", "Zg=", "Zh==", "Zm9=", "Zm9v\n", "Zm9v ", "Zm-v", "Zm_v", "=Zm9", "Zg==Zg==", "Z===", "===="])(
  "base64 rejects %j",
  (b64) => {
    expect(base64Decode(b64)).toBeUndefined();
  },
);

test("hex", () => {
  expect(hexEncode(new Uint8Array([0, 0xab, 0xff]))).toBe("00abff");
  expect(hexDecode("00ABff")).toEqual(new Uint8Array([0, 0xab, 0xff]));
  expect(hexDecode("abc")).toBeUndefined();
  expect(hexDecode("zz")).toBeUndefined();
});

test("utf8 is strict both ways", () => {
  expect(utf8Decode(utf8Encode("— é ✓")!)).toBe("— é ✓");
  expect(utf8Encode("a\ud800b")).toBeUndefined();
  expect(utf8Decode(new Uint8Array([0xc3]))).toBeUndefined();
  expect(utf8Decode(new Uint8Array([0xed, 0xa0, 0x80]))).toBeUndefined(); // encoded surrogate
});

test("decimals are canonical safe integers", () => {
  expect(parseDecimal("0")).toBe(0);
  expect(parseDecimal("9007199254740991")).toBe(Number.MAX_SAFE_INTEGER);
  for (const bad of ["", "00", "01", "+1", "-1", "1.0", "1e3", " 1", "0x1", "9007199254740992"]) expect(parseDecimal(bad)).toBeUndefined();
});

test("bytesEqual", () => {
  expect(bytesEqual(ascii("ab"), ascii("ab"))).toBe(true);
  expect(bytesEqual(ascii("ab"), ascii("abc"))).toBe(false);
  expect(bytesEqual(ascii("ab"), ascii("ac"))).toBe(false);
});
