/**
 * State machines: a transition table, checked in one place. Pure (domain code imports it via
 * `@deai/kit/state`); `transitionRow` (state/transition.ts) applies a transition as one
 * conditional UPDATE so concurrent writers cannot both move a row out of the same state.
 */
import { FailedPreconditionError } from "../errors.js";

export type TransitionTable<S extends string> = { readonly [From in S]: readonly S[] };

export class StateMachine<S extends string> {
  private readonly sources = new Map<S, S[]>();

  /**
   * @param entity what the states belong to, for messages ("upload", "lease")
   * @param transitions for each state, the states it may move to (terminal states map to [])
   */
  constructor(
    readonly entity: string,
    readonly transitions: TransitionTable<S>,
  ) {
    for (const [from, tos] of Object.entries(transitions) as [S, readonly S[]][]) {
      for (const to of tos) {
        if (!(to in transitions)) throw new Error(`${entity}: transition ${from} → ${to} names an unknown state`);
        this.sources.set(to, [...(this.sources.get(to) ?? []), from]);
      }
    }
  }

  /** Every state of the machine. */
  get states(): S[] {
    return Object.keys(this.transitions) as S[];
  }

  /** States with no way out. */
  isTerminal(state: S): boolean {
    return this.transitions[state].length === 0;
  }

  /** States that are not terminal: what a sweeper must look at. */
  get live(): S[] {
    return this.states.filter((s) => !this.isTerminal(s));
  }

  canTransition(from: S, to: S): boolean {
    return this.transitions[from]?.includes(to) ?? false;
  }

  /** The states from which `to` may be reached. */
  sourcesOf(to: S): S[] {
    return this.sources.get(to) ?? [];
  }

  /** Throws FailedPrecondition naming the entity and both states when `from → to` is illegal. */
  assert(from: S, to: S, id?: string): void {
    if (!this.canTransition(from, to)) throw this.illegal(from, to, id);
  }

  /** The error for an illegal transition. */
  illegal(from: S, to: S, id?: string): FailedPreconditionError {
    const allowed = this.sourcesOf(to);
    return new FailedPreconditionError(
      `${this.entity}${id ? ` ${id}` : ""} is ${from}: it cannot become ${to}` +
        (allowed.length ? ` (only from ${allowed.join(", ")})` : ""),
      { entity: this.entity, ...(id ? { id } : {}), from, to },
    );
  }
}
