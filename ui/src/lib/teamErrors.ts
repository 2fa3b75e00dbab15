import type { BackendError } from "./backend";

/** The sentence to show for a failed team write, in the words the user needs. */
export function teamWriteMessage(error: BackendError): string {
  switch (error.code) {
    case "precondition_failed":
      return "Someone else changed this team since you loaded it. The latest version has been reloaded: check it and try again.";
    case "not_found":
      return "This team no longer exists (someone deleted it). The list has been reloaded.";
    default:
      return error.message;
  }
}

/** Whether the failure means our copy is stale and the list must be reloaded. */
export function isStale(error: BackendError): boolean {
  return error.code === "precondition_failed" || error.code === "not_found";
}
