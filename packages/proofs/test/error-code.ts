import { ProofError } from "../src/errors.js";

/** "ok", or the ProofError code `f` throws (anything else is rethrown). */
export const codeOf = (f: () => unknown): string => {
  try {
    f();
    return "ok";
  } catch (e) {
    if (!(e instanceof ProofError)) throw e;
    return e.code;
  }
};
