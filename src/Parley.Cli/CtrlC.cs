namespace Parley.Cli;

/// <summary>
/// A cancellation source that Ctrl-C cancels (instead of ending the process) while it lives, so a
/// long-running verb can stop cleanly and say what it did. Linked to the caller's token.
/// </summary>
internal sealed class CtrlC : IDisposable
{
    private readonly ConsoleCancelEventHandler _handler;

    public CtrlC(CancellationToken linked)
    {
        Source = CancellationTokenSource.CreateLinkedTokenSource(linked);
        _handler = (_, e) =>
        {
            e.Cancel = true;
            Source.Cancel();
        };
        Console.CancelKeyPress += _handler;
    }

    /// <summary>Cancelled by Ctrl-C, by the linked token, or by the verb itself.</summary>
    public CancellationTokenSource Source { get; }

    public CancellationToken Token => Source.Token;

    public void Dispose()
    {
        Console.CancelKeyPress -= _handler;
        Source.Dispose();
    }
}
