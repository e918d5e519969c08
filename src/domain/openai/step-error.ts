import type { RunStepStatus } from "../run-step-schema.js";

/**
 * An item's own error (image_generation_call and mcp_call carry one) when it failed; else the
 * response's error for a step that failed with the response; else null.
 */
export function stepError(
  item: Record<string, unknown>,
  status: RunStepStatus,
  parentError: { code: string; message: string } | null,
): { code: string; message: string } | null {
  if (status !== "failed") return null;
  const own = item.error;
  if (typeof own === "object" && own !== null && typeof (own as { message?: unknown }).message === "string") {
    const code = (own as { code?: unknown }).code;
    return {
      code: typeof code === "string" ? code : "item_error",
      message: (own as { message: string }).message,
    };
  }
  if (typeof own === "string" && own.length > 0) return { code: "item_error", message: own };
  return parentError ? { code: parentError.code, message: parentError.message } : null;
}
