import "@tanstack/react-query";

import type { BackendError } from "./backend";

// Every query and mutation goes through `backend.ts`, so every error is a BackendError.
declare module "@tanstack/react-query" {
  interface Register {
    defaultError: BackendError;
  }
}
