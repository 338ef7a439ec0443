// Operator sign-in: OIDC authorization code + PKCE as a public client, by
// oidc-client-ts. Tokens live in this tab's sessionStorage only.

import { UserManager, WebStorageStateStore, type User } from "oidc-client-ts";
import { oidcSettings, type RuntimeConfig } from "../config";

export interface SignInState {
  /** The page to return to after sign-in. */
  returnTo: string;
}

export class Session {
  readonly manager: UserManager;
  private user: User | null = null;
  private completing: Promise<string> | null = null;

  constructor(config: RuntimeConfig, origin: string) {
    this.manager = new UserManager({
      ...oidcSettings(config, origin),
      userStore: new WebStorageStateStore({ store: window.sessionStorage }),
      stateStore: new WebStorageStateStore({ store: window.sessionStorage }),
    });
  }

  /** Loads a stored sign-in, if it is still valid. */
  async restore(): Promise<User | null> {
    const user = await this.manager.getUser();
    this.user = user && !user.expired ? user : null;
    return this.user;
  }

  get accessToken(): string | undefined {
    if (!this.user || this.user.expired) return undefined;
    return this.user.access_token;
  }

  signIn(returnTo: string): Promise<void> {
    const state: SignInState = { returnTo: safeReturnPath(returnTo) };
    return this.manager.signinRedirect({ state });
  }

  /** Completes the redirect at /auth/callback; returns where to go next. */
  completeSignIn(): Promise<string> {
    // The authorization code is single-use: a second render must not redeem it again.
    this.completing ??= this.manager.signinRedirectCallback().then((user) => {
      this.user = user;
      return safeReturnPath((user.state as SignInState | undefined)?.returnTo ?? "/");
    });
    return this.completing;
  }

  async signOut(): Promise<void> {
    const user = this.user;
    this.user = null;
    await this.manager.removeUser();
    try {
      await this.manager.signoutRedirect({ id_token_hint: user?.id_token });
    } catch {
      // A provider without an end-session endpoint: signed out locally.
      window.location.assign("/login");
    }
  }

  /** Forgets the local sign-in (after a 401) without visiting the provider. */
  async forget(): Promise<void> {
    this.user = null;
    await this.manager.removeUser();
  }
}

/** Only same-origin paths are followed after sign-in. */
export function safeReturnPath(path: string): string {
  if (!path.startsWith("/") || path.startsWith("//") || path.startsWith("/\\")) return "/";
  if (path.startsWith("/auth/callback") || path.startsWith("/login")) return "/";
  return path;
}
