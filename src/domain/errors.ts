/** Every failure the domain reports has a code; adapters map codes to HTTP statuses or chat replies. */
export enum ErrorCode {
  InvalidInput = 'invalid_input',
  NotFound = 'not_found',
  Conflict = 'conflict',
  Unauthorized = 'unauthorized',
  Forbidden = 'forbidden',
  Unavailable = 'unavailable',
}

export class CodedError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'CodedError';
  }
}

export const notFound = (message: string) => new CodedError(ErrorCode.NotFound, message);
export const conflict = (message: string, details?: unknown) => new CodedError(ErrorCode.Conflict, message, details);
export const invalidInput = (message: string, details?: unknown) => new CodedError(ErrorCode.InvalidInput, message, details);

export function isCodedError(err: unknown): err is CodedError {
  return err instanceof CodedError;
}
