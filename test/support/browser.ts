/**
 * The Chromium the browser tests drive with playwright-core (which never
 * downloads a browser of its own): Debian's /usr/bin/chromium where it is
 * installed, else the headless Chromium that the @sparticuz/chromium
 * devDependency ships inside its npm package, so `npm install` is all the
 * set-up a machine needs. Neither there is an error, never a skip.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { type Browser, chromium } from "playwright-core";

const DEBIAN_CHROMIUM = "/usr/bin/chromium";
const NPM_CHROMIUM = "@sparticuz/chromium";

/** The same flags for either browser, so a test sees the same Chromium behaviour (web security and CSP on). */
const ARGS = [
  "--no-sandbox",
  "--headless",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-quic",
  "--no-first-run",
  "--disable-component-update",
  "--disable-sync",
];

export interface FoundChromium {
  executablePath: string;
  args: string[];
  /** Where it came from, for messages. */
  source: string;
}

/** Finds a Chromium to launch: Debian's, else the npm package's (unpacked on first use). Throws if there is none. */
export async function findChromium(): Promise<FoundChromium> {
  if (existsSync(DEBIAN_CHROMIUM)) return { executablePath: DEBIAN_CHROMIUM, args: ARGS, source: "Debian's chromium" };
  try {
    return { executablePath: await unpackNpmChromium(), args: ARGS, source: NPM_CHROMIUM };
  } catch (error) {
    throw new Error(
      `No Chromium for the browser tests: ${DEBIAN_CHROMIUM} is absent and the devDependency ${NPM_CHROMIUM} ` +
        `could not provide one (${(error as Error).message.split("\n")[0]}). Run \`npm install\` (or apt-get install chromium).`,
      { cause: error },
    );
  }
}

/** Launches the Chromium that findChromium returns, headless. */
export async function launchChromium(): Promise<Browser> {
  const found = await findChromium();
  try {
    return await chromium.launch({ executablePath: found.executablePath, headless: true, args: found.args });
  } catch (error) {
    throw new Error(`Could not launch ${found.source} at ${found.executablePath}: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * The package's own executablePath() unpacks into os.tmpdir() and reuses any
 * /tmp/chromium it finds, whatever its version or however far a killed run got
 * writing it. So it is pointed (through TMPDIR, which os.tmpdir() reads on each
 * call) at a scratch folder that is renamed into a per-version folder once the
 * unpacking has finished.
 */
async function unpackNpmChromium(): Promise<string> {
  const version = packageVersion(createRequire(import.meta.url).resolve(NPM_CHROMIUM));
  const dir = join(tmpdir(), `pgpulse-chromium-${version}`);
  const binary = join(dir, "chromium");
  if (existsSync(binary)) return binary;

  const scratch = `${dir}.partial-${process.pid}`;
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  const { default: npmChromium } = await import("@sparticuz/chromium");
  const previous = process.env.TMPDIR;
  process.env.TMPDIR = scratch;
  try {
    await npmChromium.executablePath();
  } finally {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
  }
  try {
    renameSync(scratch, dir);
  } catch (error) {
    rmSync(scratch, { recursive: true, force: true });
    if (!existsSync(binary)) throw error; // else another run finished first: use its copy
  }
  return binary;
}

/** The version in the package.json of the package that file belongs to. */
function packageVersion(file: string): string {
  for (let dir = dirname(file); dir !== dirname(dir); dir = dirname(dir)) {
    const manifest = join(dir, "package.json");
    if (!existsSync(manifest)) continue;
    const { name, version } = JSON.parse(readFileSync(manifest, "utf8")) as { name?: string; version?: string };
    if (name === NPM_CHROMIUM && version) return version;
  }
  throw new Error(`no package.json of ${NPM_CHROMIUM} above ${file}`);
}
