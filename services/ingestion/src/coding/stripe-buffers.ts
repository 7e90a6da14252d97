// Shared stripe memory lives in the kit, beside the codec and the leaf hash pool.
export { allocParity, allocStripe, giveShared, isShared, releaseStripeBuffer, takeShared } from "@deai/kit";
