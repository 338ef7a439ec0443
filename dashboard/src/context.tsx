import { createContext, useContext } from "react";
import type { Api, Operator } from "./api/client";
import type { Session } from "./auth/session";
import type { RuntimeConfig } from "./config";
import type { Grants } from "./scopes";

export interface Dashboard {
  config: RuntimeConfig;
  session: Session;
  api: Api;
}

export interface SignedIn {
  operator: Operator;
  grants: Grants;
}

export const DashboardContext = createContext<Dashboard | null>(null);
export const OperatorContext = createContext<SignedIn | null>(null);

export function useDashboard(): Dashboard {
  const value = useContext(DashboardContext);
  if (!value) throw new Error("useDashboard outside the dashboard");
  return value;
}

export function useOperator(): SignedIn {
  const value = useContext(OperatorContext);
  if (!value) throw new Error("useOperator outside a signed-in page");
  return value;
}
