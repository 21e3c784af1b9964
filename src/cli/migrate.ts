// CLI command: pgpulse migrate
import { migrate } from "../schema/migrate.ts";
import { writeOut } from "../shared/runtime.ts";
import type { Flags } from "./args.ts";
import { connect, databaseUrl } from "./connect.ts";
import type { Command } from "./command.ts";

const flags: Flags = {};

export const migrateCommand: Command = {
  usage: "pgpulse migrate [options]",
  summary: "Creates or upgrades pgpulse's schema. Safe to run from many places at once.",
  flags,
  async run({ values }) {
    const sql = connect(databaseUrl(values), 1);
    try {
      const schema = (values.schema as string | undefined) ?? "pgpulse";
      const result = await migrate({ connection: sql, schema });
      writeOut(
        result.applied.length > 0
          ? `schema ${schema}: applied migration ${result.applied.join(", ")}; now at version ${result.version}\n`
          : `schema ${schema} is current (version ${result.version})\n`,
      );
      return 0;
    } finally {
      await sql.end({ timeout: 5 });
    }
  },
};
