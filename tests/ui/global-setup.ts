/**
 * Starts `jupyter lab` with the BoxRun extension for the tests, in throw-away state:
 * a temp BoxRun state dir, Jupyter config, settings and workspaces, and the lab
 * extension built in this checkout (jupyter_ext/labextension) first on JUPYTER_PATH.
 */
import { ChildProcess, spawn } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '..', '..');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

function python(): string {
  if (process.env.BOXRUN_UI_PYTHON) {
    return process.env.BOXRUN_UI_PYTHON;
  }
  const venv = path.join(ROOT, '.venv', 'bin', 'python');
  return fs.existsSync(venv) ? venv : 'python3';
}

async function waitReady(url: string, token: string, server: ChildProcess, log: string) {
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) {
      throw new Error(`jupyter lab exited with ${server.exitCode}; see ${log}`);
    }
    try {
      const r = await fetch(`${url}boxrun/v1/info`, {
        headers: { Authorization: `token ${token}` }
      });
      if (r.ok) {
        return;
      }
    } catch {
      // not listening yet
    }
    await new Promise(r => setTimeout(r, 300));
  }
  throw new Error(`jupyter lab did not answer within 90 s; see ${log}`);
}

export default async function globalSetup(): Promise<() => Promise<void>> {
  const extension = path.join(ROOT, 'jupyter_ext', 'labextension');
  if (!fs.existsSync(path.join(extension, 'package.json'))) {
    throw new Error(
      `The lab extension is not built (${extension} is missing): run ` +
        '`npm install && npm run build` in labextension/.'
    );
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'boxrun-ui-'));
  const dirs = {
    state: path.join(tmp, 'state'),
    config: path.join(tmp, 'config'),
    data: path.join(tmp, 'data'),
    settings: path.join(tmp, 'settings'),
    workspaces: path.join(tmp, 'workspaces'),
    notebooks: path.join(tmp, 'notebooks')
  };
  for (const dir of Object.values(dirs)) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  // Box root (a subordinate uid) may pass through to the notebooks, which the
  // BoxRun kernel mounts in its box.
  fs.chmodSync(tmp, 0o711);
  fs.chmodSync(dirs.notebooks, 0o755);
  // This checkout's build of the extension, ahead of any installed copy.
  fs.mkdirSync(path.join(dirs.data, 'labextensions'), { recursive: true });
  fs.symlinkSync(extension, path.join(dirs.data, 'labextensions', 'boxrun-jupyter'));
  fs.writeFileSync(
    path.join(dirs.config, 'jupyter_server_config.json'),
    JSON.stringify({ ServerApp: { jpserver_extensions: { jupyter_ext: true } } })
  );
  // No news pop-up over the panel.
  fs.mkdirSync(path.join(dirs.config, 'labconfig'), { recursive: true });
  fs.writeFileSync(
    path.join(dirs.config, 'labconfig', 'page_config.json'),
    JSON.stringify({ disabledExtensions: { '@jupyterlab/apputils-extension:announcements': true } })
  );

  const port = await freePort();
  const token = crypto.randomBytes(16).toString('hex');
  const log = path.join(tmp, 'jupyter.log');
  const out = fs.openSync(log, 'w');
  const server = spawn(
    python(),
    [
      '-m', 'jupyter', 'lab',
      '--no-browser',
      '--ip=127.0.0.1',
      `--port=${port}`,
      '--port-retries=0',
      `--IdentityProvider.token=${token}`,
      `--ServerApp.root_dir=${dirs.notebooks}`,
      '--allow-root',
      '--ServerApp.open_browser=False',
      '--LabApp.expose_app_in_browser=True'
    ],
    {
      env: {
        ...process.env,
        BOXRUN_STATE_DIR: dirs.state,
        BOXRUN_IMAGES_DIR: process.env.BOXRUN_IMAGES_DIR || '/var/tmp/boxrun-test-images',
        JUPYTER_CONFIG_DIR: dirs.config,
        JUPYTER_PATH: dirs.data,
        JUPYTERLAB_SETTINGS_DIR: dirs.settings,
        JUPYTERLAB_WORKSPACES_DIR: dirs.workspaces
      },
      stdio: ['ignore', out, out],
      detached: true
    }
  );
  const url = `http://127.0.0.1:${port}/`;
  try {
    await waitReady(url, token, server, log);
  } catch (err) {
    try {
      process.kill(-server.pid!, 'SIGKILL');
    } catch {
      // gone
    }
    console.error(fs.readFileSync(log, 'utf8').slice(-4000));
    throw err;
  }
  // If the runner is stopped before its teardown, take the server down with it.
  const killNow = () => {
    try {
      process.kill(-server.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  };
  process.once('exit', killNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killNow();
      process.exit(1);
    });
  }
  process.env.BOXRUN_UI_URL = url;
  process.env.BOXRUN_UI_TOKEN = token;
  process.env.BOXRUN_UI_LOG = log;

  return async () => {
    const exited = new Promise(resolve => server.once('exit', resolve));
    try {
      process.kill(-server.pid!, 'SIGTERM');
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-server.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    }, 15_000);
    await exited;
    clearTimeout(timer);
    try {
      fs.rmSync(tmp, { recursive: true, force: true });
    } catch (err) {
      console.warn(`could not remove ${tmp}: ${err}`);
    }
  };
}
