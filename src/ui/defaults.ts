/** The web view's port unless told (`ui --port`, `run --ui PORT`); kept apart so the CLI loads the server only when used. */
export const DEFAULT_UI_PORT = 8090;
