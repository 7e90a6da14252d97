import { FailedPreconditionError } from "../errors.js";
import { StateMachine } from "./state-machine.js";

type S = "open" | "sealed" | "done" | "failed";
const m = new StateMachine<S>("upload", {
  open: ["sealed", "failed"],
  sealed: ["done", "failed"],
  done: [],
  failed: [],
});

describe("StateMachine", () => {
  it("knows its sources, terminal and live states", () => {
    expect(m.sourcesOf("failed").sort()).toEqual(["open", "sealed"]);
    expect(m.sourcesOf("open")).toEqual([]);
    expect(m.isTerminal("done")).toBe(true);
    expect(m.live).toEqual(["open", "sealed"]);
    expect(m.canTransition("open", "done")).toBe(false);
  });

  it("refuses an illegal transition with a precise FailedPrecondition", () => {
    expect(() => m.assert("done", "open", "u1")).toThrow(FailedPreconditionError);
    expect(() => m.assert("open", "done", "u1")).toThrow("upload u1 is open: it cannot become done (only from sealed)");
    expect(() => m.assert("open", "sealed")).not.toThrow();
  });

  it("rejects a table naming an unknown state", () => {
    expect(() => new StateMachine<"a" | "b">("x", { a: ["c" as "b"], b: [] })).toThrow("unknown state");
  });
});
