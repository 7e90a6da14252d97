// One jest run over every workspace. Tests are ESM TypeScript compiled by @swc/jest;
// workspace packages resolve to their sources so tests need no build step.
/** @type {import('jest').Config} */
const swc = [
  "@swc/jest",
  {
    jsc: { parser: { syntax: "typescript", decorators: false }, target: "es2022" },
    module: { type: "es6" },
    sourceMaps: "inline",
  },
];

export default {
  testEnvironment: "node",
  extensionsToTreatAsEsm: [".ts"],
  transform: { "^.+\\.ts$": swc },
  moduleNameMapper: {
    "^@deai/contracts/(.*)$": "<rootDir>/packages/contracts/src/gen/$1",
    "^@deai/kit/errors$": "<rootDir>/packages/kit/src/errors.ts",
    "^@deai/kit/clock$": "<rootDir>/packages/kit/src/time/clock.ts",
    "^@deai/kit/state$": "<rootDir>/packages/kit/src/state/state-machine.ts",
    "^@deai/kit/money$": "<rootDir>/packages/kit/src/money/amount.ts",
    "^@deai/kit/placement$": "<rootDir>/packages/kit/src/providers/placement.ts",
    "^@deai/kit/gpu-classes$": "<rootDir>/packages/kit/src/catalog/gpu-classes.ts",
    "^@deai/([a-z-]+)$": "<rootDir>/packages/$1/src/index.ts",
    "^(\\.{1,2}/.*)\\.js$": "$1",
  },
  testMatch: ["<rootDir>/{packages,services,tools}/*/{src,test}/**/*.test.ts", "<rootDir>/infra/helm/test/**/*.test.ts"],
  testPathIgnorePatterns: ["/node_modules/", "/dist/"],
  maxWorkers: 2,
  testTimeout: 30000,
};
