import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";

import type { Instance } from "../bindings/Instance";
import { ConfirmDialog } from "../components/common/ConfirmDialog";
import { ConnectionReportLine } from "../components/instances/ConnectionReportView";
import { Dialog } from "../components/common/Dialog";
import { EnvBadge } from "../components/shell/EnvBadge";
import { ErrorState } from "../components/common/ErrorState";
import { ErrorText } from "../components/common/ErrorText";
import { InstanceForm } from "../components/instances/InstanceForm";
import { NodesTable } from "../components/instances/NodesTable";
import { useToast } from "../components/common/Toaster";
import { latency } from "../lib/format";
import * as backend from "../lib/backend";
import { invalidateInstances, keys, useCurrentInstanceId, useInstances } from "../lib/queries";
import { navigate, useRoute } from "../lib/route";


function InstanceRow({
  instance,
  current,
  onEdit,
  onRemove,
}: {
  instance: Instance;
  current: boolean;
  onEdit: () => void;
  onRemove: () => void;
}) {
  const client = useQueryClient();
  const toast = useToast();
  const test = useMutation({
    mutationFn: () => backend.testConnection(instance.id),
    onSuccess: async (report) => {
      if (report.ok) toast.success(`“${instance.name}” answered in ${latency(report.latency_ms)}.`);
      else toast.info(`“${instance.name}”: ${report.error?.message ?? "connection failed"}`);
      await client.invalidateQueries({ queryKey: keys.fleet });
    },
    onError: (error) => toast.error(`Could not test “${instance.name}”`, error),
  });

  const [showNodes, setShowNodes] = useState(false);

  return (
    <>
      <tr className={current ? "row-current" : undefined} data-testid={`instance-row-${instance.name}`}>
        <td className="nowrap">
          <strong>{instance.name}</strong>
          {current && <span className="muted"> (current)</span>}
        </td>
        <td>
          <EnvBadge environment={instance.environment} color={instance.color} />
        </td>
        <td className="mono">{instance.base_url}</td>
        <td className="nowrap">
          {instance.tls_verify ? (
            instance.ca_cert_pem ? (
              "on, custom CA"
            ) : (
              "on"
            )
          ) : (
            <span className="warning-text">off</span>
          )}
        </td>
        <td className="cell-result" aria-live="polite">
          {test.isPending && <span className="muted">Testing…</span>}
          {test.data && <ConnectionReportLine report={test.data} />}
          {test.error && <ErrorText error={test.error} />}
        </td>
        <td className="actions">
          <button type="button" onClick={() => test.mutate()} disabled={test.isPending} data-testid="test-instance">
            Test
          </button>
          <button
            type="button"
            onClick={() => setShowNodes((shown) => !shown)}
            aria-expanded={showNodes}
            data-testid="show-nodes"
          >
            Nodes
          </button>
          <button type="button" onClick={onEdit} data-testid="edit-instance">
            Edit
          </button>
          <button type="button" className="danger-quiet" onClick={onRemove} data-testid="remove-instance">
            Remove
          </button>
        </td>
      </tr>
      {showNodes && (
        <tr className="row-nested" data-testid={`instance-nodes-${instance.name}`}>
          <td colSpan={6}>
            <NodesTable instanceId={instance.id} />
          </td>
        </tr>
      )}
    </>
  );
}

export function InstancesPage() {
  const instances = useInstances();
  const current = useCurrentInstanceId();
  const client = useQueryClient();
  const toast = useToast();
  // The add form lives in the URL (`#/instances/add`) so other pages can link to it.
  const adding = useRoute().detail === "add";
  const [editing, setEditing] = useState<Instance | null>(null);
  const [removing, setRemoving] = useState<Instance | null>(null);

  const remove = useMutation({
    mutationFn: (instance: Instance) => backend.removeInstance(instance.id),
    onSuccess: async (_null, instance) => {
      setRemoving(null);
      toast.success(`Removed “${instance.name}” and its token.`);
      await invalidateInstances(client);
    },
  });

  const closeAdd = () => navigate("instances", undefined, true);

  const closeRemove = () => {
    setRemoving(null);
    remove.reset();
  };

  return (
    <section className="page">
      <div className="toolbar">
        <p className="muted">The gateways this console manages. Admin tokens live in the system keyring.</p>
        <span className="spacer" />
        <button type="button" className="primary" data-testid="add-instance" onClick={() => navigate("instances", "add")}>
          Add instance
        </button>
      </div>

      {instances.isPending && <p className="muted">Loading instances…</p>}
      {instances.isError && (
        <ErrorState what="the instances" error={instances.error} onRetry={() => void instances.refetch()} />
      )}
      {instances.data?.length === 0 && (
        <div className="empty">
          <p>
            <strong>No instances yet.</strong> Add your first gateway: its base URL and an admin token are enough.
          </p>
          <button type="button" className="primary" onClick={() => navigate("instances", "add")}>
            Add instance
          </button>
        </div>
      )}
      {instances.data && instances.data.length > 0 && (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Environment</th>
              <th scope="col">Base URL</th>
              <th scope="col">TLS verify</th>
              <th scope="col">Last test</th>
              <th scope="col" className="actions">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {instances.data.map((instance) => (
              <InstanceRow
                key={instance.id}
                instance={instance}
                current={instance.id === current.data}
                onEdit={() => setEditing(instance)}
                onRemove={() => setRemoving(instance)}
              />
            ))}
          </tbody>
        </table>
      )}

      {adding && (
        <Dialog title="Add instance" onClose={closeAdd} wide>
          <InstanceForm onDone={closeAdd} onCancel={closeAdd} />
        </Dialog>
      )}

      {editing && !adding && (
        <Dialog title={`Edit “${editing.name}”`} onClose={() => setEditing(null)} wide>
          <InstanceForm key={editing.id} instance={editing} onDone={() => setEditing(null)} onCancel={() => setEditing(null)} />
        </Dialog>
      )}

      {removing && (
        <ConfirmDialog
          title="Remove instance"
          confirmLabel="Remove"
          onConfirm={() => remove.mutate(removing)}
          onCancel={closeRemove}
          pending={remove.isPending}
          error={remove.error}
        >
          <p>
            Remove “{removing.name}”? Its admin token is deleted from the keyring.
          </p>
          <p className="muted">The gateway itself is not touched; you can add it again with a token.</p>
        </ConfirmDialog>
      )}
    </section>
  );
}
