// Type-aware lint for every TypeScript workspace. Architecture rules live here too:
// src/domain/ stays pure (no transports, database, NATS or SDKs).
import js from "@eslint/js";
import importX from "eslint-plugin-import-x";
import { createTypeScriptImportResolver } from "eslint-import-resolver-typescript";
import tseslint from "typescript-eslint";

const transports = [
  "kysely",
  "pg",
  "nats",
  "minio",
  "s3rver",
  "pino",
  "@connectrpc/*",
  "@grpc/*",
  "@opentelemetry/*",
  "@aws-sdk/*",
  "node:http",
  "node:http2",
  "node:net",
];

export default tseslint.config(
  {
    ignores: [
      "**/dist/**",
      "**/node_modules/**",
      "packages/contracts/src/**",
      "**/*.d.ts",
      "services/trainer/**",
      "charts/**",
      "bench/**",
      "coverage/**",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    files: ["**/*.ts"],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { "import-x": importX },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/require-await": "off",
      "@typescript-eslint/no-unsafe-assignment": "off",
      "@typescript-eslint/no-unsafe-member-access": "off",
      "@typescript-eslint/no-unsafe-argument": "off",
      "@typescript-eslint/no-unsafe-return": "off",
      "@typescript-eslint/no-unsafe-call": "off",
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true, allowBoolean: true, allowNullish: true }],
      "@typescript-eslint/only-throw-error": "off",
      "import-x/no-cycle": ["error", { ignoreExternal: true }],
      // Strict parsers of text formats (signed notes, checkpoints) must name control characters.
      "no-control-regex": "off",
    },
    settings: {
      "import-x/resolver-next": [
        createTypeScriptImportResolver({ project: ["packages/*/tsconfig.json", "services/*/tsconfig.json", "tools/*/tsconfig.json"] }),
      ],
      "import-x/extensions": [".ts", ".js"],
    },
  },
  {
    files: ["**/src/domain/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          // Exact names: the kit's root and the test kit are off limits, its `errors` subpath is not.
          paths: ["@deai/kit", "@deai/testkit"].map((name) => ({
            name,
            message:
              "src/domain/ is pure: import errors, the clock and state machines from @deai/kit/errors, @deai/kit/clock and @deai/kit/state.",
          })),
          patterns: [
            {
              group: transports,
              message: "src/domain/ is pure: no transports, database, NATS, S3 or SDK imports (errors come from @deai/kit/errors).",
            },
          ],
        },
      ],
    },
  },
  {
    files: ["**/*.js", "**/*.mjs"],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { globals: { process: "readonly", console: "readonly", URL: "readonly" } },
  },
);
