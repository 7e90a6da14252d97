export * from "./env.js";
export * from "./nats.js";
export * from "./postgres.js";
export * from "./s3.js";
export * from "./signed-fetch.js";
export * from "./process.js";
export * from "./service-conformance.js";
