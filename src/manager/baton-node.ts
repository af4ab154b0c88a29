/** baton's own hidden node, the one that launches, adopts and stops peers. */
import { EpmdError, Node, type NodeOptions } from '../distribution/index.js';
import { nextGeneration } from '../peer/index.js';

/**
 * Starts `baton-<gen>@<host>` (short names when `host` is undefined). The generation
 * counts per state dir, so another baton on the host (another app, another state dir)
 * may hold the name: EPMD says so, and the next generation is tried.
 */
export async function startBatonNode(
  stateDir: string,
  host: string | undefined,
  opts: Omit<NodeOptions, 'name'>,
): Promise<Node> {
  for (let attempt = 1; ; attempt++) {
    const node = new Node({
      ...opts,
      name: `baton-${nextGeneration(stateDir)}${host === undefined ? '' : `@${host}`}`,
    });
    try {
      await node.start();
      return node;
    } catch (err) {
      await node.close();
      if (!(err instanceof EpmdError && err.reason === 'name_taken') || attempt === 20) throw err;
    }
  }
}
