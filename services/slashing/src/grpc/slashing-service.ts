// deai.slashing.v1.SlashingService over gRPC, Connect and REST: decode, check the shape of the
// request, call the app, map the view. Mutations are signed (the kit checks the signature and
// gives the actor): Bond and Unbond act on the caller's own stake, SubmitEvidence rewards the
// caller as reporter, Veto must come from a council member whose signed statement it carries.
import type { HandlerContext } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";

import type { Money } from "@deai/contracts/deai/common/v1/common_pb";
import {
  EvidenceKind,
  GetProviderStatusResponseSchema,
  ProviderStatus,
  SlashingService,
  SlashState,
  type ListSlashesRequest,
} from "@deai/contracts/deai/slashing/v1/slashing_pb";
import { bind, requireActor, type ServiceBinding } from "@deai/kit";
import { InvalidArgumentError } from "@deai/kit/errors";

import type { Slashing } from "../app/slashing.js";
import {
  evidenceFromRequest,
  evidenceToProto,
  KIND_FROM_PROTO,
  money,
  slashToProto,
  stakeToProto,
  STATE_FROM_PROTO,
  STATUS_TO_PROTO,
} from "./views.js";

const ACTOR = /^[A-Za-z0-9_-]{43}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const SLASH_ID = /^[0-9a-f]{32}$/;

function actorId(v: string, field: string): string {
  if (!ACTOR.test(v)) throw new InvalidArgumentError(`${field} must be an actor id (43 base64url characters)`, { field });
  return v;
}

function amountOf(m: Money | undefined, currency: string): bigint {
  if (!m) throw new InvalidArgumentError("amount is required", { field: "amount" });
  if (m.currency !== currency) throw new InvalidArgumentError(`amount.currency must be ${currency}`, { field: "amount.currency" });
  if (m.micros <= 0n) throw new InvalidArgumentError("amount must be positive", { field: "amount.micros" });
  return m.micros;
}

function slashId(v: string): string {
  if (!SLASH_ID.test(v)) throw new InvalidArgumentError("slash_id must be 32 lowercase hex characters", { field: "slash_id" });
  return v;
}

/** The page token is the offset into the filtered list. */
function page(req: Pick<ListSlashesRequest, "pageSize" | "pageToken">): { limit: number; offset: number } {
  if (req.pageToken !== "" && !/^(0|[1-9]\d{0,8})$/.test(req.pageToken))
    throw new InvalidArgumentError("page_token is not one this service issued", { field: "page_token" });
  return { limit: Math.min(Math.max(req.pageSize || 50, 1), 500), offset: req.pageToken === "" ? 0 : Number(req.pageToken) };
}

export function slashingService(app: Slashing): ServiceBinding {
  const currency = app.params.currency;
  return bind(SlashingService, {
    bond: async (req, ctx: HandlerContext) => {
      const provider = requireActor(ctx);
      const stake = await app.bond(provider, amountOf(req.amount, currency), req.idempotencyKey);
      return { stake: stakeToProto(stake, currency) };
    },
    unbond: async (req, ctx: HandlerContext) => {
      const provider = requireActor(ctx);
      const u = await app.unbond(provider, amountOf(req.amount, currency), req.idempotencyKey);
      const stake = await app.stake(provider);
      const entry = stake.unbonding.find((x) => x.unbondingId === u.unbondingId);
      return {
        unbonding: {
          unbondingId: u.unbondingId,
          amount: money(currency, entry?.amount ?? req.amount!.micros),
          ...(entry ? { startedAt: timestampFromDate(entry.startedAt) } : {}),
          completesAt: timestampFromDate(u.completesAt),
        },
        stake: stakeToProto(stake, currency),
      };
    },
    getStake: async (req) => ({ stake: stakeToProto(await app.stake(actorId(req.providerId, "provider_id")), currency) }),
    submitEvidence: async (req, ctx: HandlerContext) => {
      const reporter = requireActor(ctx);
      const r = await app.submitEvidence(evidenceFromRequest(req), reporter);
      return { evidence: evidenceToProto(await app.evidence(r.evidenceId)), duplicate: r.duplicate };
    },
    getEvidence: async (req) => {
      if (!HEX64.test(req.evidenceId))
        throw new InvalidArgumentError("evidence_id must be 64 lowercase hex characters", { field: "evidence_id" });
      return { evidence: evidenceToProto(await app.evidence(req.evidenceId)) };
    },
    listSlashes: async (req) => {
      const kind = req.kind === EvidenceKind.UNSPECIFIED ? undefined : KIND_FROM_PROTO[req.kind];
      if (req.kind !== EvidenceKind.UNSPECIFIED && !kind)
        throw new InvalidArgumentError(`kind ${req.kind} is not an evidence kind`, { field: "kind" });
      const state = req.state === SlashState.UNSPECIFIED ? undefined : STATE_FROM_PROTO[req.state];
      if (req.state !== SlashState.UNSPECIFIED && !state)
        throw new InvalidArgumentError(`state ${req.state} is not a slash state`, { field: "state" });
      const p = page(req);
      const rows = await app.listSlashes({
        ...(req.providerId !== "" ? { providerId: actorId(req.providerId, "provider_id") } : {}),
        ...(state ? { state } : {}),
        ...(kind ? { kind } : {}),
        limit: p.limit + 1,
        offset: p.offset,
      });
      return {
        slashes: rows.slice(0, p.limit).map((s) => slashToProto(s, currency)),
        nextPageToken: rows.length > p.limit ? String(p.offset + p.limit) : "",
      };
    },
    veto: async (req, ctx: HandlerContext) => {
      const member = requireActor(ctx);
      const id = slashId(req.slashId);
      if (!req.statement) throw new InvalidArgumentError("statement (the signed veto/v1 statement) is required", { field: "statement" });
      const envelope = {
        payloadType: req.statement.payloadType,
        payload: req.statement.payload,
        signatures: req.statement.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig })),
      };
      const r = await app.veto(id, member, envelope, req.reason === "" ? undefined : req.reason);
      return { slash: slashToProto(await app.slash(id), currency), vetoes: r.vetoes, threshold: r.threshold };
    },
    getProviderStatus: async (req) => {
      const provider = actorId(req.providerId, "provider_id");
      const s = await app.stake(provider);
      return create(GetProviderStatusResponseSchema, {
        providerId: provider,
        status: STATUS_TO_PROTO[s.status] ?? ProviderStatus.UNSPECIFIED,
        ...(s.jailedUntil && s.status === "jailed" ? { jailedUntil: timestampFromDate(s.jailedUntil) } : {}),
        slashId: s.statusSlashId ?? "",
        bonded: money(currency, s.bonded),
        eligible: s.status === "active" && s.bonded >= app.params.minStake,
        minStake: money(currency, app.params.minStake),
      });
    },
  });
}
