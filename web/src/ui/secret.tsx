import { useState } from 'react';

/**
 * A secret the server shows once (an API key token, a webhook signing secret, recovery codes):
 * kept in this component's memory only, never in storage or the URL, with copy and download.
 */
export function ShownOnce({ label, value, filename }: { label: string; value: string; filename?: string }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    await navigator.clipboard.writeText(value).then(() => setCopied(true), () => setCopied(false));
  };
  const download = () => {
    const url = URL.createObjectURL(new Blob([value], { type: 'text/plain' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = filename ?? 'secret.txt';
    a.click();
    URL.revokeObjectURL(url);
  };
  return (
    <div className="shown-once" role="region" aria-label={label}>
      <p className="warning">
        <strong>Copy it now.</strong> {label} is shown only this once: Palisade keeps only a hash of it and cannot show it again.
      </p>
      <pre data-testid="secret-value">{value}</pre>
      <div className="row">
        <button type="button" onClick={() => void copy()}>{copied ? 'Copied' : 'Copy'}</button>
        {filename ? <button type="button" onClick={download}>Download</button> : null}
      </div>
    </div>
  );
}
