using Parley.Protocol;
using Serilog.Events;
using Serilog.Formatting;

namespace Parley.Server.Logging;

/// <summary>Wraps a Serilog formatter so every rendered line passes through <see cref="SecretRedactor"/>.</summary>
internal sealed class RedactingFormatter(ITextFormatter inner) : ITextFormatter
{
    public void Format(LogEvent logEvent, TextWriter output)
    {
        using var buffer = new StringWriter();
        inner.Format(logEvent, buffer);
        output.Write(SecretRedactor.Redact(buffer.ToString()));
    }
}
