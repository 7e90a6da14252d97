// The native Reed-Solomon codec lives in the kit (repair in da-sampler rebuilds with it too).
export { checkCodingParameters, codecLimits, nativeCodec, StripeCodec } from "@deai/kit";
