// CLI command: pgpulse migrate
import { migrate, migrationSql } from "../schema/migrate.ts";
import { writeOut } from "../shared/runtime.ts";
import { type Flags, poolerOption } from "./args.ts";
import { connect, databaseUrl } from "./connect.ts";
import type { Command } from "./command.ts";

const flags: Flags = {
  print: { type: "boolean", help: "print the SQL of every migration instead of applying it (no database needed)" },
};

export const migrateCommand: Command = {
  usage: "pgpulse migrate [--print] [options]",
  summary:
    "Creates or upgrades pgpulse's schema. Safe to run from many places at once.\n" +
    "With --print, writes the SQL to stdout for applying with your own tool (psql -1 -f).",
  flags,
  async run({ values }) {
    const schema = (values.schema as string | undefined) ?? "pgpulse";
    if (values.print) {
      writeOut(migrationSql({ schema }));
      return 0;
    }
    const sql = connect(databaseUrl(values), 1, poolerOption(values));
    try {
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
