import { readFile } from "node:fs/promises";
import { LowrankError } from "@lowrank/core";

/** Reads a JSON array of equal-length integer arrays (token ids or a mask). @throws LowrankError USAGE naming the file */
export async function readIdRows(file: string, flag: string): Promise<number[][]> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(file, "utf8"));
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? (error as Error).message.split("\n")[0];
    throw new LowrankError("USAGE", `${flag} ${file}: cannot read a JSON array (${why})`);
  }
  if (!Array.isArray(value) || value.length === 0 || !value.every((row) => Array.isArray(row) && row.length > 0 && row.every((x) => Number.isInteger(x)))) {
    throw new LowrankError("USAGE", `${flag} ${file}: expected a non-empty JSON array of non-empty integer arrays, e.g. [[1, 2, 3]]`);
  }
  const rows = value as number[][];
  const width = rows[0]!.length;
  const bad = rows.findIndex((r) => r.length !== width);
  if (bad >= 0)
    throw new LowrankError("USAGE", `${flag} ${file}: row ${bad} has ${rows[bad]!.length} entries but row 0 has ${width}; rows must be equally long`);
  return rows;
}
