import { useQuery } from "@tanstack/react-query";

import type { NodeInfo } from "../../bindings/NodeInfo";
import type { NodesHealth } from "../../bindings/NodesHealth";
import * as backend from "../../lib/backend";
import { keys } from "../../lib/queries";
import { useNow } from "../../lib/useNow";
import { ErrorState } from "../common/ErrorState";
import { StatusBadge } from "../common/StatusBadge";
import { When } from "../common/When";

/** An instance's nodes in a few words: "3 up", "2 up · 1 stale" (the leader in its tooltip). */
export function NodesSummary({ nodes }: { nodes: NodesHealth | undefined }) {
  if (!nodes) return <span className="muted">—</span>;
  const leader = nodes.leader ? `; jobs led by ${nodes.leader}` : "; no node leads the jobs";
  return (
    <span className="nowrap" data-testid="fleet-nodes" title={`${nodes.up + nodes.stale} nodes${leader}`}>
      {nodes.up} up
      {nodes.stale > 0 && <span className="warning-text"> · {nodes.stale} stale</span>}
    </span>
  );
}

function NodeRow({ node, now }: { node: NodeInfo; now: number }) {
  return (
    <tr data-testid="node-row">
      <td className="mono">{node.address}</td>
      <td>
        <StatusBadge status={node.status} />
      </td>
      <td>{node.leads_jobs ? <strong>leads the jobs</strong> : <span className="muted">—</span>}</td>
      <td className="num">{String(node.leases)}</td>
      <td className="mono">{node.version}</td>
      <td className="nowrap">
        <When iso={node.started_at} now={now} />
      </td>
      <td className="nowrap">
        <When iso={node.heartbeat_at} now={now} />
      </td>
    </tr>
  );
}

/** The nodes serving an instance (`GET /admin/v1/nodes`), followed every few seconds. */
export function NodesTable({ instanceId }: { instanceId: string }) {
  const now = useNow();
  const nodes = useQuery({
    queryKey: keys.nodes(instanceId),
    queryFn: () => backend.instanceNodes(instanceId),
    refetchInterval: 5_000,
  });
  if (nodes.isPending) return <p className="muted">Loading the nodes…</p>;
  if (nodes.isError) return <ErrorState what="the nodes" error={nodes.error} onRetry={() => void nodes.refetch()} />;
  return (
    <table className="table table-nested" data-testid="nodes-table">
      <caption className="muted">
        Nodes share the instance&apos;s database; a node is up while its heartbeat (every 5 s) is at most 15 s old.
      </caption>
      <thead>
        <tr>
          <th scope="col">Node</th>
          <th scope="col">Health</th>
          <th scope="col">Jobs</th>
          <th scope="col" className="num">
            Leases
          </th>
          <th scope="col">Version</th>
          <th scope="col">Started</th>
          <th scope="col">Last heartbeat</th>
        </tr>
      </thead>
      <tbody>
        {nodes.data.map((node) => (
          <NodeRow key={node.id} node={node} now={now} />
        ))}
      </tbody>
    </table>
  );
}
