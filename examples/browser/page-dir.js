// Where the built page is (dist/, made by `node build.mjs`): `lowrank web` serves it.
import path from "node:path";
import { fileURLToPath } from "node:url";

export const pageDir = path.join(path.dirname(fileURLToPath(import.meta.url)), "dist");
