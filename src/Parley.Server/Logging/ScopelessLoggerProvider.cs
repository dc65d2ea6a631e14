using Microsoft.Extensions.Logging;

namespace Parley.Server.Logging;

/// <summary>
/// Wraps a logger provider and drops logging scopes. Kestrel opens a scope for every connection and
/// keeps it in the connection's execution context for the connection's whole life (about 150 bytes
/// per idle socket); Parley's log lines carry the connection id themselves, so scopes add nothing.
/// Because this provider does not implement <c>ISupportExternalScope</c>, the logger factory keeps no
/// scope stack at all.
/// </summary>
internal sealed class ScopelessLoggerProvider(ILoggerProvider inner) : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => new ScopelessLogger(inner.CreateLogger(categoryName));

    public void Dispose() => inner.Dispose();

    private sealed class ScopelessLogger(ILogger inner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            inner.Log(logLevel, eventId, state, exception, formatter);
    }
}
