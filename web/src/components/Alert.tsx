/** An error the user should read, announced to screen readers; nothing when there is none. */
export function Alert({ message }: { message?: string | null | undefined }) {
  if (!message) return null;
  return (
    <p role="alert" className="text-red-600">
      {message}
    </p>
  );
}
