import { ManualClock } from "@deai/kit/clock";

import { waitUntil } from "./wake-or-poll.js";

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 10));

describe("waitUntil on the service clock", () => {
  it("is woken by a local event before the poll, polls on the clock, and gives up at the deadline", async () => {
    const clock = new ManualClock();
    const wakers = new Set<() => void>();
    let value: string | undefined;
    let checks = 0;
    const check = async (): Promise<string | undefined> => (checks++, value);
    const woken = waitUntil(check, wakers, 10_000, clock, 250);
    await tick();
    expect(checks).toBe(1);
    value = "local";
    for (const w of wakers) w();
    expect(await woken).toBe("local");
    expect(wakers.size).toBe(0);

    value = undefined;
    checks = 0;
    const polled = waitUntil(check, wakers, 10_000, clock, 250);
    await tick();
    clock.advance(249);
    await tick();
    expect(checks).toBe(1);
    value = "remote";
    clock.advance(1);
    expect(await polled).toBe("remote");

    value = undefined;
    const expired = waitUntil(check, wakers, 600, clock, 250);
    for (let i = 0; i < 3; i++) {
      await tick();
      clock.advance(250);
    }
    expect(await expired).toBeUndefined();
    expect(clock.pending).toBe(0);
  });
});
