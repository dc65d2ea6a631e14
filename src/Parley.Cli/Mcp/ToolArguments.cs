using System.Globalization;
using System.Text.Json;

namespace Parley.Cli.Mcp;

/// <summary>A tool call the agent must change: the message says what was wrong and what to do instead.</summary>
internal sealed class ToolException(string message) : Exception(message);

/// <summary>
/// A tool's arguments, checked against the same JSON schema that <c>tools/list</c> publishes, so the
/// schema an agent reads is exactly the rule it is held to. The subset understood: <c>type</c> (one or a
/// list), <c>properties</c>, <c>required</c>, <c>additionalProperties: false</c>, <c>enum</c>,
/// <c>minLength</c>/<c>maxLength</c>, <c>minimum</c>/<c>maximum</c>, <c>items</c>, <c>minItems</c>/<c>maxItems</c>.
/// </summary>
internal sealed class ToolArguments
{
    private readonly IReadOnlyDictionary<string, JsonElement> _values;

    private ToolArguments(IReadOnlyDictionary<string, JsonElement> values) => _values = values;

    /// <summary>Checks <paramref name="arguments"/> against <paramref name="schema"/>; throws <see cref="ToolException"/> naming the first problem.</summary>
    public static ToolArguments Validate(string tool, JsonElement schema, IReadOnlyDictionary<string, JsonElement>? arguments)
    {
        var values = arguments ?? new Dictionary<string, JsonElement>();
        var properties = schema.GetProperty("properties");
        foreach (var (name, value) in values)
        {
            if (!properties.TryGetProperty(name, out var rule))
            {
                var known = string.Join(", ", properties.EnumerateObject().Select(p => p.Name));
                throw new ToolException($"{tool} has no argument '{name}'; it takes: {(known.Length > 0 ? known : "no arguments")}");
            }
            Check(tool, name, rule, value);
        }
        if (schema.TryGetProperty("required", out var required))
        {
            foreach (var name in required.EnumerateArray().Select(r => r.GetString()!))
            {
                if (!values.TryGetValue(name, out var v) || v.ValueKind == JsonValueKind.Null && !Allows(properties.GetProperty(name), "null"))
                {
                    throw new ToolException($"{tool} needs the argument '{name}' ({Describe(properties.GetProperty(name))})");
                }
            }
        }
        return new ToolArguments(values);
    }

    public string? String(string name) => _values.TryGetValue(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    public string RequiredString(string name, string why) => String(name) ?? throw new ToolException(why);

    public long? Integer(string name) => _values.TryGetValue(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : null;

    public double? Number(string name) => _values.TryGetValue(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;

    public bool Has(string name) => _values.ContainsKey(name);

    public bool IsNull(string name) => _values.TryGetValue(name, out var v) && v.ValueKind == JsonValueKind.Null;

    /// <summary>The raw value (any JSON), or null when absent.</summary>
    public JsonElement? Raw(string name) => _values.TryGetValue(name, out var v) ? v : null;

    /// <summary>A string, or each string of an array of strings; null when absent.</summary>
    public string[]? Strings(string name) => _values.TryGetValue(name, out var v)
        ? v.ValueKind == JsonValueKind.Array ? v.EnumerateArray().Select(e => e.GetString()!).ToArray() : v.ValueKind == JsonValueKind.String ? [v.GetString()!] : null
        : null;

    private static void Check(string tool, string name, JsonElement rule, JsonElement value)
    {
        var kind = KindOf(value);
        if (rule.TryGetProperty("type", out _) && !Allows(rule, kind) && !(kind == "integer" && Allows(rule, "number")))
        {
            throw new ToolException($"{tool}: '{name}' must be {Describe(rule)}, not {(kind == "null" ? "null" : A(kind))}");
        }
        if (rule.TryGetProperty("enum", out var options) && !options.EnumerateArray().Any(o => o.ValueKind == value.ValueKind && o.GetRawText() == value.GetRawText()))
        {
            throw new ToolException($"{tool}: '{name}' must be one of {string.Join(", ", options.EnumerateArray().Select(o => o.GetRawText()))}, not {value.GetRawText()}");
        }
        switch (value.ValueKind)
        {
            case JsonValueKind.String:
                var length = value.GetString()!.Length;
                if (rule.TryGetProperty("minLength", out var min) && length < min.GetInt32())
                {
                    throw new ToolException($"{tool}: '{name}' must not be empty");
                }
                if (rule.TryGetProperty("maxLength", out var max) && length > max.GetInt32())
                {
                    throw new ToolException($"{tool}: '{name}' is {length} characters; at most {max.GetInt32()} fit");
                }
                break;
            case JsonValueKind.Number:
                var number = value.GetDouble();
                if (rule.TryGetProperty("minimum", out var low) && number < low.GetDouble() || rule.TryGetProperty("maximum", out var high) && number > high.GetDouble())
                {
                    throw new ToolException($"{tool}: '{name}' must be {Describe(rule)}, not {value.GetRawText()}");
                }
                break;
            case JsonValueKind.Array:
                var count = value.GetArrayLength();
                if (rule.TryGetProperty("minItems", out var fewest) && count < fewest.GetInt32() || rule.TryGetProperty("maxItems", out var most) && count > most.GetInt32())
                {
                    throw new ToolException($"{tool}: '{name}' must be {Describe(rule)} ({count} given)");
                }
                if (rule.TryGetProperty("items", out var items))
                {
                    var i = 0;
                    foreach (var item in value.EnumerateArray())
                    {
                        Check(tool, string.Create(CultureInfo.InvariantCulture, $"{name}[{i++}]"), items, item);
                    }
                }
                break;
        }
    }

    private static string KindOf(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => "string",
        JsonValueKind.Number => value.TryGetInt64(out _) ? "integer" : "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.Array => "array",
        JsonValueKind.Object => "object",
        _ => "null",
    };

    private static bool Allows(JsonElement rule, string kind)
    {
        if (!rule.TryGetProperty("type", out var type))
        {
            return true;
        }
        return type.ValueKind == JsonValueKind.Array ? type.EnumerateArray().Any(t => t.GetString() == kind) : type.GetString() == kind;
    }

    private static string A(string kind) => ("aeiou".Contains(kind[0], StringComparison.Ordinal) ? "an " : "a ") + kind;

    private static string Describe(JsonElement rule)
    {
        var text = rule.TryGetProperty("type", out var type)
            ? type.ValueKind == JsonValueKind.Array ? string.Join(" or ", type.EnumerateArray().Select(t => A(t.GetString()!))) : A(type.GetString()!)
            : "any JSON value";
        if (rule.TryGetProperty("minimum", out var min) && rule.TryGetProperty("maximum", out var max))
        {
            text += $" from {min.GetRawText()} to {max.GetRawText()}";
        }
        if (rule.TryGetProperty("minItems", out var fewest) && rule.TryGetProperty("maxItems", out var most))
        {
            text += $" of {fewest.GetRawText()} to {most.GetRawText()} items";
        }
        if (rule.TryGetProperty("enum", out var options))
        {
            text = "one of " + string.Join(", ", options.EnumerateArray().Select(o => o.GetRawText()));
        }
        return text;
    }
}
