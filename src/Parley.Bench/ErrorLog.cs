using System.Collections.Concurrent;

namespace Parley.Bench;

/// <summary>Counts errors from every connection and keeps the first few distinct messages for the report.</summary>
internal sealed class ErrorLog
{
    private const int MaxDistinct = 5;
    private readonly ConcurrentDictionary<string, long> _messages = new(StringComparer.Ordinal);
    private long _count;

    public long Count => Interlocked.Read(ref _count);

    public void Add(string message)
    {
        Interlocked.Increment(ref _count);
        if (_messages.Count < MaxDistinct || _messages.ContainsKey(message))
        {
            _messages.AddOrUpdate(message, 1, static (_, n) => n + 1);
        }
    }

    /// <summary>The distinct messages, most frequent first, each with its count when more than one.</summary>
    public List<string> Messages() => _messages
        .OrderByDescending(static p => p.Value)
        .Select(static p => p.Value > 1 ? $"{p.Key} (×{p.Value})" : p.Key)
        .ToList();
}
